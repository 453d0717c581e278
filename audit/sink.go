package audit

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Options tune a Sink. The zero value is usable.
type Options struct {
	// QueueSize is how many events may wait for the writer (default 4096).
	// When it is full Log blocks: an audit line is never dropped to keep a
	// request going.
	QueueSize int
	// FlushInterval is the longest a line waits in memory before it is
	// written (default 100ms); FlushBytes writes sooner once that much is
	// buffered (default 64 KiB). Lines are written, not fsynced.
	FlushInterval time.Duration
	FlushBytes    int
}

func (o *Options) defaults() {
	if o.QueueSize <= 0 {
		o.QueueSize = 4096
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 100 * time.Millisecond
	}
	if o.FlushBytes <= 0 {
		o.FlushBytes = 64 << 10
	}
}

// pipeBuf is the largest write a pipe keeps whole (POSIX PIPE_BUF): a stream
// sink writes whole lines in pieces no larger, so that on a shared stderr
// other writers' lines fall between audit lines, not inside them.
const pipeBuf = 4096

const (
	batchWait      = time.Millisecond
	closeRetries   = 20
	closeRetryWait = 50 * time.Millisecond
)

// Sink writes events as hash-chained JSON lines (see the package comment).
// Log only queues: one goroutine encodes, hashes and writes, so a request
// never waits on disk I/O unless the queue is full.
type Sink struct {
	log  hclog.Logger
	opts Options
	path string // "" for a stream

	// mu orders Log against Close: Log queues under the read lock, so once
	// Close holds the write lock every event taken is in q.
	mu     sync.RWMutex
	closed bool
	q      chan Event
	ctl    chan func() // work for the writer goroutine (Reopen, Flush)
	stop   chan struct{}
	done   chan struct{}

	// Owned by the writer goroutine (by Open and NewStream before it starts).
	w        io.Writer
	f        *os.File // nil for a stream
	chunk    int      // largest single Write, cut at a line end; 0: no limit
	maxBuf   int      // above this, writes are failing: stop taking events
	buf      []byte   // encoded lines not yet written
	chain    chain
	failing  bool // the last write failed (logged once until one succeeds)
	closeErr error
}

// Open appends to the audit log at path, creating it (mode 0600) if needed.
// An existing file's chain goes on from its last line, which must be a
// kmipd audit record; a trailing incomplete line (a crash mid-write) is
// ended and left in place for Verify to report. log should be a named
// sub-logger (logger.Named("audit")).
func Open(path string, opts Options, log hclog.Logger) (*Sink, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	c, fragment, err := resume(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	s := newSink(f, opts, log)
	s.path, s.f, s.chain = path, f, c
	if fragment {
		s.log.Warn("audit log ends with an incomplete line; it stays, and the chain goes on after it", "path", path)
		s.buf = append(s.buf, '\n')
	}
	s.buf = s.chain.appendControl(s.buf, time.Now(), "open")
	// Fail now, not on the first request, when the file cannot be written.
	if err := s.flush(); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit: writing %s: %w", path, err)
	}
	go s.run()
	return s, nil
}

// NewStream writes a new chain (from GenesisHash) to w, typically os.Stderr.
// Close does not close w, and Reopen does nothing.
func NewStream(w io.Writer, opts Options, log hclog.Logger) *Sink {
	s := newSink(w, opts, log)
	s.chunk = pipeBuf
	s.buf = s.chain.appendControl(s.buf, time.Now(), "open")
	go s.run()
	return s
}

func newSink(w io.Writer, opts Options, log hclog.Logger) *Sink {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	opts.defaults()
	return &Sink{
		log: log, opts: opts, w: w,
		q: make(chan Event, opts.QueueSize), ctl: make(chan func()),
		stop: make(chan struct{}), done: make(chan struct{}),
		maxBuf: 16 * opts.FlushBytes, buf: make([]byte, 0, opts.FlushBytes+8<<10),
	}
}

// Log queues e. It blocks while the queue is full, until there is room or
// ctx ends; it never drops e silently.
func (s *Sink) Log(ctx context.Context, e Event) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	// Room in the queue takes e even when ctx has already ended (a request
	// that ran out of time is still audited).
	select {
	case s.q <- e:
		return nil
	default:
	}
	select {
	case s.q <- e:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit: event not recorded, the queue stayed full: %w", context.Cause(ctx))
	}
}

// Reopen makes a file sink continue in a new file at its path, for
// logrotate: after the old file was renamed, the old one gets a close
// record and the new one an open record whose prev links it to the old.
// When path still names the file being written, it only flushes.
func (s *Sink) Reopen() error {
	if s.path == "" {
		return nil
	}
	return s.do(s.reopen)
}

// Flush writes every event logged before it was called.
func (s *Sink) Flush() error { return s.do(s.flushQueued) }

// flushQueued encodes what Log has queued and writes it: an event whose Log
// returned before a Flush or Reopen goes to the file being written then.
func (s *Sink) flushQueued() error {
	s.drainWriting()
	return s.flush()
}

// Close writes every queued event and a close record, then closes the file.
// Log returns ErrClosed afterwards.
func (s *Sink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	return s.closeErr
}

// do runs fn on the writer goroutine and returns its error.
func (s *Sink) do(fn func() error) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	reply := make(chan error, 1)
	s.ctl <- func() { reply <- fn() }
	s.mu.RUnlock()
	return <-reply
}

func (s *Sink) run() {
	defer close(s.done)
	tick := time.NewTicker(s.opts.FlushInterval)
	defer tick.Stop()
	for {
		q := s.q
		if len(s.buf) >= s.maxBuf {
			// Writes are failing: hold what is buffered and take no more,
			// so that Log pushes back on requests instead of memory growing.
			// The ticker retries.
			q = nil
		}
		select {
		case e := <-q:
			s.buf = s.chain.appendEvent(s.buf, &e)
			s.drainWriting()
			// Let the queue fill a moment: under load the writer then wakes
			// once per batch rather than once per event (a wakeup costs
			// more than encoding a line).
			time.Sleep(batchWait)
		case <-tick.C:
			_ = s.flush()
		case fn := <-s.ctl:
			fn()
		case <-s.stop:
			s.shutdown()
			return
		}
	}
}

// drainWriting encodes what is queued until the queue is empty, writing
// every FlushBytes; it stops early if writes fail and the buffer is full.
func (s *Sink) drainWriting() {
	for len(s.buf) < s.maxBuf {
		if len(s.buf) >= s.opts.FlushBytes && s.flush() != nil {
			return
		}
		select {
		case e := <-s.q:
			s.buf = s.chain.appendEvent(s.buf, &e)
		default:
			if len(s.buf) >= s.opts.FlushBytes {
				_ = s.flush()
			}
			return
		}
	}
}

// drain encodes what is already queued while the buffer is below limit.
func (s *Sink) drain(limit int) {
	for len(s.buf) < limit {
		select {
		case e := <-s.q:
			s.buf = s.chain.appendEvent(s.buf, &e)
		default:
			return
		}
	}
}

func (s *Sink) shutdown() {
	// closed is set: nothing more is queued, so this takes every event.
	s.drain(math.MaxInt)
	s.buf = s.chain.appendControl(s.buf, time.Now(), "close")
	err := s.flush()
	// A failing disk gets a few more tries (about a second) before lines
	// are given up, loudly.
	for try := 0; err != nil && try < closeRetries; try++ {
		time.Sleep(closeRetryWait)
		err = s.flush()
	}
	if err != nil {
		s.closeErr = fmt.Errorf("audit: %d bytes of audit lines not written: %w", len(s.buf), err)
		s.log.Error("audit lines lost at shutdown", "path", s.path, "bytes", len(s.buf), "error", err)
	}
	if s.f != nil {
		if err := s.f.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("audit: %w", err)
		}
	}
}

// flush writes the buffer. What a failed write leaves stays buffered for the
// next try, in order, so the chain on disk has no holes.
func (s *Sink) flush() error {
	for len(s.buf) > 0 {
		p := s.buf
		if s.chunk > 0 && len(p) > s.chunk {
			p = p[:lineCut(p, s.chunk)]
		}
		n, err := s.w.Write(p)
		n = max(0, min(n, len(p)))
		s.buf = s.buf[:copy(s.buf, s.buf[n:])]
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
		if err != nil {
			if !s.failing {
				s.failing = true
				s.log.Error("audit log write failed; keeping the lines and retrying", "path", s.path, "buffered_bytes", len(s.buf), "error", err)
			}
			return err
		}
	}
	if s.failing {
		s.failing = false
		s.log.Info("audit log writes work again", "path", s.path)
	}
	return nil
}

// lineCut is the length of the longest run of whole lines in p that fits in
// limit, or of p's first line when even that does not fit.
func lineCut(p []byte, limit int) int {
	for i := limit - 1; i >= 0; i-- {
		if p[i] == '\n' {
			return i + 1
		}
	}
	for i := limit; i < len(p); i++ {
		if p[i] == '\n' {
			return i + 1
		}
	}
	return len(p)
}

func (s *Sink) reopen() error {
	// What was logged before the rotation belongs to the old file.
	if err := s.flushQueued(); err != nil {
		return fmt.Errorf("audit: writing before reopening %s: %w", s.path, err)
	}
	nf, err := os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		s.log.Error("audit log reopen failed; still writing the old file", "path", s.path, "error", err)
		return fmt.Errorf("audit: reopening %s: %w", s.path, err)
	}
	ni, err1 := nf.Stat()
	oi, err2 := s.f.Stat()
	if err1 == nil && err2 == nil && os.SameFile(ni, oi) {
		nf.Close()
		return s.flush()
	}
	if err1 == nil && ni.Size() > 0 {
		s.log.Warn("the new audit log file is not empty; appending to it", "path", s.path, "bytes", ni.Size())
	}
	now := time.Now()
	s.buf = s.chain.appendControl(s.buf, now, "close")
	// What the old file does not take goes to the new one: the chain stays
	// whole across the two.
	_ = s.flush()
	if err := s.f.Close(); err != nil {
		s.log.Warn("closing the rotated audit log", "error", err)
	}
	s.f, s.w = nf, nf
	s.buf = s.chain.appendControl(s.buf, now, "open")
	s.log.Info("audit log reopened", "path", s.path, "seq", s.chain.seq)
	return s.flush()
}
