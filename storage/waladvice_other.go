//go:build !linux

package storage

import (
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// walAdvisor is Linux-only (waladvice_linux.go): elsewhere there is no
// /proc/self/maps to find badger's WAL mappings in.
type walAdvisor struct{}

func startWALAdvisor(string, int64, *atomic.Uint64, hclog.Logger) *walAdvisor { return nil }

func (*walAdvisor) poke(int) {}
func (*walAdvisor) close()   {}
