package storage

import (
	"os"
	"testing"

	"github.com/kmipd/kmipd/storage/pgtest"
)

// TestMain lets the PostgreSQL tests share one server per test binary.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
