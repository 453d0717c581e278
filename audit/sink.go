package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Options tune a Sink. The zero value is usable.
type Options struct {
	// MaxPending is how many bytes of encoded lines may wait for the
	// writer (default 4 MiB, some ten thousand lines). When they do, Log
	// blocks: an audit line is never dropped to keep a request going.
	MaxPending int
	// FlushInterval is the longest a line waits in memory before it is
	// written (default 100ms); FlushBytes writes sooner once that much is
	// buffered (default 64 KiB). Lines are written, not fsynced.
	FlushInterval time.Duration
	FlushBytes    int
}

func (o *Options) defaults() {
	if o.FlushInterval <= 0 {
		o.FlushInterval = 100 * time.Millisecond
	}
	if o.FlushBytes <= 0 {
		o.FlushBytes = 64 << 10
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 4 << 20
	}
}

// pipeBuf is the largest write a pipe keeps whole (POSIX PIPE_BUF): a stream
// sink writes whole lines in pieces no larger, so that on a shared stderr
// other writers' lines fall between audit lines, not inside them.
const pipeBuf = 4096

// writebackBytes is how much the writer appends between two starts of
// writeback (startWriteback).
const writebackBytes = 1 << 20

const (
	closeRetries   = 20
	closeRetryWait = 50 * time.Millisecond
)

// Sink writes events as hash-chained JSON lines (see the package comment).
//
// Log encodes the event's body on the caller's goroutine and appends it to a
// buffer under a short lock: a copy, nothing more. One writer goroutine,
// which owns the chain, takes the buffer every FlushBytes or FlushInterval,
// gives each body its head (seq and prev) and hash in the buffer's order,
// and writes the lines out. So a request never waits on disk I/O unless
// MaxPending bytes are waiting, nor on another request's hashing (under
// load, SHA-256 under the lock made requests queue for it), and no
// goroutine is woken per event: handing each event to the writer through a
// channel, and the writer's wake-ups, cost more CPU than the line itself.
type Sink struct {
	log  hclog.Logger
	opts Options
	path string // "" for a stream

	// life orders do against Close: do hands work to the writer under the
	// read lock, so once Close holds the write lock nothing more is handed.
	life sync.RWMutex

	mu     sync.Mutex // what Log appends
	closed bool
	buf    []byte        // line bodies the writer has not taken, each ending in '\n'
	held   int           // bytes the writer has taken but not written
	room   chan struct{} // closed when bytes were written; nil if no Log waits
	kick   chan struct{} // buf reached FlushBytes (capacity 1)

	ctl  chan func() // work for the writer goroutine (Reopen, Flush)
	stop chan struct{}
	done chan struct{}

	// Owned by the writer goroutine (by Open and NewStream before it starts).
	chain    chain  // the last line chained: only the writer adds lines
	taken    []byte // buf's spare: the writer swaps the two
	w        io.Writer
	f        *os.File // nil for a stream
	chunk    int      // largest single Write, cut at a line end; 0: no limit
	out      []byte   // lines taken from buf, not yet written
	end      int64    // the file's size: what it held at open and what we appended
	synced   int64    // offset up to which writeback was started
	failing  bool     // the last write failed (logged once until one succeeds)
	closeErr error
}

// bodies recycles the scratch space Log encodes a line's body in.
var bodies = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

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
	if st, err := f.Stat(); err == nil {
		s.end, s.synced = st.Size(), st.Size()
	}
	if fragment {
		s.log.Warn("audit log ends with an incomplete line; it stays, and the chain goes on after it", "path", path)
		s.out = append(s.out, '\n')
	}
	s.out = s.chain.appendControl(s.out, time.Now(), "open")
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
	s.out = s.chain.appendControl(s.out, time.Now(), "open")
	go s.run()
	return s
}

func newSink(w io.Writer, opts Options, log hclog.Logger) *Sink {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	opts.defaults()
	size := opts.FlushBytes + 8<<10
	return &Sink{
		log: log, opts: opts, w: w,
		kick: make(chan struct{}, 1), ctl: make(chan func()),
		stop: make(chan struct{}), done: make(chan struct{}),
		buf: make([]byte, 0, size), taken: make([]byte, 0, size), out: make([]byte, 0, size),
	}
}

// Log records e. It blocks while MaxPending bytes wait for the writer (the
// disk is slow or failing), until there is room or ctx ends; it never drops
// e silently.
func (s *Sink) Log(ctx context.Context, e Event) error {
	bp := bodies.Get().(*[]byte)
	body := appendEventBody((*bp)[:0], &e)
	err := s.append(ctx, body)
	if cap(body) <= 64<<10 {
		*bp = body
		bodies.Put(bp)
	}
	return err
}

// append adds body, a line without its head, to buf for the writer to
// chain. body holds no '\n' (appendString escapes it), so the '\n' after it
// marks where it ends.
func (s *Sink) append(ctx context.Context, body []byte) error {
	s.mu.Lock()
	// Room takes the line even when ctx has already ended (a request that
	// ran out of time is still audited).
	for !s.closed && len(s.buf)+s.held >= s.opts.MaxPending {
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return fmt.Errorf("audit: event not recorded, the writer stayed behind: %w", context.Cause(ctx))
		}
		s.mu.Lock()
	}
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.buf = append(append(s.buf, body...), '\n')
	full := len(s.buf) >= s.opts.FlushBytes
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default: // the writer is already told
		}
	}
	return nil
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
func (s *Sink) Flush() error { return s.do(s.write) }

// Close writes every logged event and a close record, then closes the file.
// Log returns ErrClosed afterwards.
func (s *Sink) Close() error {
	s.life.Lock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.life.Unlock()
		return nil
	}
	s.closed = true
	if s.room != nil { // waiting Logs return ErrClosed
		close(s.room)
		s.room = nil
	}
	s.mu.Unlock()
	s.life.Unlock()
	close(s.stop)
	<-s.done
	return s.closeErr
}

// do runs fn on the writer goroutine and returns its error.
func (s *Sink) do(fn func() error) error {
	s.life.RLock()
	if s.isClosed() {
		s.life.RUnlock()
		return ErrClosed
	}
	reply := make(chan error, 1)
	s.ctl <- func() { reply <- fn() }
	s.life.RUnlock()
	return <-reply
}

func (s *Sink) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Sink) run() {
	defer close(s.done)
	tick := time.NewTicker(s.opts.FlushInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.kick:
			_ = s.write()
		case <-tick.C:
			_ = s.write()
		case fn := <-s.ctl:
			fn()
		case <-s.stop:
			s.shutdown()
			return
		}
	}
}

// take chains what Log appended into out, the writer's own buffer; with a
// control record (what) after it unless what is "". Only the swap of
// buffers is under the lock: Log goes on appending while the writer hashes.
func (s *Sink) take(what string) {
	s.mu.Lock()
	bodies := s.buf
	s.buf = s.taken[:0]
	s.held = len(s.out) + len(bodies) // still waiting, until written
	s.mu.Unlock()
	for rest := bodies; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		s.out = s.chain.appendLine(s.out, rest[:i])
		rest = rest[i+1:]
	}
	s.taken = bodies[:0]
	if what != "" {
		s.out = s.chain.appendControl(s.out, time.Now(), what)
	}
	s.mu.Lock()
	s.held = len(s.out)
	s.mu.Unlock()
}

// write writes every line logged so far.
func (s *Sink) write() error {
	s.take("")
	return s.flush()
}

func (s *Sink) shutdown() {
	// closed is set: nothing more is appended, so this takes every event.
	s.take("close")
	err := s.flush()
	// A failing disk gets a few more tries (about a second) before lines
	// are given up, loudly.
	for try := 0; err != nil && try < closeRetries; try++ {
		time.Sleep(closeRetryWait)
		err = s.flush()
	}
	if err != nil {
		s.closeErr = fmt.Errorf("audit: %d bytes of audit lines not written: %w", len(s.out), err)
		s.log.Error("audit lines lost at shutdown", "path", s.path, "bytes", len(s.out), "error", err)
	}
	if s.f != nil {
		if err := s.f.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("audit: %w", err)
		}
	}
}

// flush writes out. What a failed write leaves stays for the next try, in
// order, so the chain on disk has no holes; Logs waiting for room retry
// once bytes were written.
func (s *Sink) flush() error {
	err := s.writeOut()
	s.mu.Lock()
	s.held = len(s.out)
	if s.room != nil && len(s.buf)+s.held < s.opts.MaxPending {
		close(s.room)
		s.room = nil
	}
	s.mu.Unlock()
	return err
}

func (s *Sink) writeOut() error {
	for len(s.out) > 0 {
		p := s.out
		if s.chunk > 0 && len(p) > s.chunk {
			p = p[:lineCut(p, s.chunk)]
		}
		n, err := s.w.Write(p)
		n = max(0, min(n, len(p)))
		s.out = s.out[:copy(s.out, s.out[n:])]
		s.end += int64(n)
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
		if err != nil {
			if !s.failing {
				s.failing = true
				s.log.Error("audit log write failed; keeping the lines and retrying", "path", s.path, "buffered_bytes", len(s.out), "error", err)
			}
			return err
		}
	}
	if s.failing {
		s.failing = false
		s.log.Info("audit log writes work again", "path", s.path)
	}
	if s.f != nil {
		s.startWriteback()
	}
	return nil
}

// startWriteback asks the kernel to start writing what was appended since
// the last call, once that is writebackBytes (sync_file_range,
// asynchronous: nothing waits, nothing is promised durable). Left to the
// flusher, some 30 s of lines go to disk at once; on ext4 with
// data=ordered a store's fsync in that moment waits for all of them,
// which showed as stalls of synced writes (Create) with the audit log on.
// A MiB at a time keeps each such wait short, and costs the writer little
// more than the flusher's own work (RocksDB's bytes_per_sync does this).
func (s *Sink) startWriteback() {
	if s.end-s.synced >= writebackBytes {
		startWriteback(s.f, s.synced, s.end-s.synced)
		s.synced = s.end
	}
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
	if err := s.write(); err != nil {
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
		return s.write()
	}
	if err1 == nil && ni.Size() > 0 {
		s.log.Warn("the new audit log file is not empty; appending to it", "path", s.path, "bytes", ni.Size())
	}
	// The close record ends the old file; the open record, chained right
	// after it, starts the new one before any line logged meanwhile (those
	// wait in buf for the next take).
	s.take("close")
	cut := len(s.out)
	s.out = s.chain.appendControl(s.out, time.Now(), "open")
	s.mu.Lock()
	s.held = len(s.out)
	s.mu.Unlock()
	seq := s.chain.seq
	rest := append([]byte(nil), s.out[cut:]...)
	s.out = s.out[:cut]
	// What the old file does not take goes to the new one: the chain stays
	// whole across the two.
	_ = s.writeOut()
	if err := s.f.Close(); err != nil {
		s.log.Warn("closing the rotated audit log", "error", err)
	}
	s.f, s.w, s.end, s.synced = nf, nf, 0, 0
	if err1 == nil {
		s.end, s.synced = ni.Size(), ni.Size()
	}
	s.out = append(s.out, rest...)
	s.log.Info("audit log reopened", "path", s.path, "seq", seq)
	return s.flush()
}
