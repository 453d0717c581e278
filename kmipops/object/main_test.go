package object

import (
	"os"
	"testing"

	"github.com/kmipd/kmipd/storage/pgtest"
)

// TestMain stops the PostgreSQL server the shared-store tests start.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
