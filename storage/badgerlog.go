package storage

import (
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/go-hclog"
)

// badgerLogger adapts go-hclog to badger.Logger. Badger is chatty at INFO
// (compactions, table opens, replay progress), so its INFO goes to DEBUG and
// its DEBUG to TRACE; warnings and errors keep their level.
type badgerLogger struct{ l hclog.Logger }

var _ badger.Logger = badgerLogger{}

func msg(format string, args []any) string {
	return strings.TrimRight(fmt.Sprintf(format, args...), "\n")
}

func (b badgerLogger) Errorf(f string, a ...any) { b.l.Error(msg(f, a)) }
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(msg(f, a))
}

// Infof and Debugf format only when the level is enabled: badger calls them
// on hot paths.
func (b badgerLogger) Infof(f string, a ...any) {
	if b.l.IsDebug() {
		b.l.Debug(msg(f, a))
	}
}

func (b badgerLogger) Debugf(f string, a ...any) {
	if b.l.IsTrace() {
		b.l.Trace(msg(f, a))
	}
}
