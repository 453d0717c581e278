package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Handler serves one operation. It may report progress and, for a
// streaming answer, write raw bytes through r.Stream; otherwise its result
// is sent as the final Reply. A handler's error text goes to the client.
type Handler func(ctx context.Context, args json.RawMessage, r *Responder) (any, error)

// Server answers admin requests on a Unix socket.
type Server struct {
	path     string
	ln       *net.UnixListener
	log      hclog.Logger
	handlers map[string]Handler

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Listen creates the socket at path with mode 0600. It refuses a path that
// exists unless it is a stale socket (one nothing answers on), which it
// replaces. log should be a named sub-logger (logger.Named("admin")).
func Listen(path string, handlers map[string]Handler, log hclog.Logger) (*Server, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if err := clearStale(path); err != nil {
		return nil, err
	}
	// Bind in a private folder and move the socket into place, so it is
	// never reachable with a mode wider than 0600.
	tmp, err := os.MkdirTemp(filepath.Dir(path), ".admin-")
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	defer os.RemoveAll(tmp)
	bound := filepath.Join(tmp, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // the socket moves; Close removes path itself
	if err := os.Chmod(bound, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := os.Rename(bound, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{path: path, ln: ln, log: log, handlers: handlers, ctx: ctx, cancel: cancel}
	s.wg.Add(1)
	go s.accept()
	log.Info("admin socket listening", "path", path)
	return s, nil
}

// clearStale removes a socket at path that nothing answers on, and refuses
// anything else that exists there.
func clearStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("admin socket %s: the path exists and is not a socket; refusing to replace it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("admin socket %s: another kmipd answers on it", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("admin socket %s: cannot tell whether it is stale: %w", path, err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("admin socket %s: removing the stale socket: %w", path, err)
	}
	return nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if s.ctx.Err() == nil {
				s.log.Error("admin socket accept failed; admin channel closed", "error", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serve(c)
		}()
	}
}

// Close stops accepting, cancels running handlers, waits for them, and
// removes the socket.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.ln.Close()
		s.wg.Wait()
		_ = os.Remove(s.path)
	})
	return nil
}

// Responder is a handler's way back to the client.
type Responder struct {
	c        net.Conn
	enc      *json.Encoder
	streamed bool
}

// Progress sends a progress line; a client that went away is not the
// handler's concern (the final write fails and is logged).
func (r *Responder) Progress(what string, done, total int64) {
	_ = r.enc.Encode(Reply{Progress: &Progress{What: what, Done: done, Total: total}})
}

// Stream sends the final Reply marked Stream and returns the connection for
// the raw answer; the handler's own result is then ignored.
func (r *Responder) Stream() (io.Writer, error) {
	r.streamed = true
	if err := r.enc.Encode(Reply{Done: true, Stream: true}); err != nil {
		return nil, err
	}
	return r.c, nil
}

func (s *Server) serve(c *net.UnixConn) {
	defer c.Close()
	br := bufio.NewReaderSize(io.LimitReader(c, maxLine), 4096)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := br.ReadBytes('\n')
	if err != nil {
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	r := &Responder{c: c, enc: json.NewEncoder(c)}
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		_ = r.enc.Encode(Reply{Done: true, Error: "malformed request"})
		return
	}
	h, ok := s.handlers[req.Op]
	if !ok {
		_ = r.enc.Encode(Reply{Done: true, Error: fmt.Sprintf("unknown operation %q", req.Op)})
		return
	}
	s.log.Info("admin request", "op", req.Op)
	res, err := h(s.ctx, req.Args, r)
	if r.streamed {
		if err != nil {
			// The client sees a stream without its trailer and refuses it.
			s.log.Error("admin request failed while streaming", "op", req.Op, "error", err)
		}
		return
	}
	if err != nil {
		s.log.Warn("admin request failed", "op", req.Op, "error", err)
		_ = r.enc.Encode(Reply{Done: true, Error: err.Error()})
		return
	}
	b, err := json.Marshal(res)
	if err != nil {
		_ = r.enc.Encode(Reply{Done: true, Error: "encoding the result: " + err.Error()})
		return
	}
	if err := r.enc.Encode(Reply{Done: true, Result: b}); err != nil {
		s.log.Warn("admin reply not delivered", "op", req.Op, "error", err)
	}
}
