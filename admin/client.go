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
	"syscall"
)

// Call sends op with args to the server at socket and returns the result.
// progress, if not nil, sees each progress line. When the server streams,
// the raw bytes are copied to stream (an error if stream is nil).
func Call(ctx context.Context, socket, op string, args any, progress func(Progress), stream io.Writer) (json.RawMessage, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, &Error{Op: op, Msg: fmt.Sprintf("nothing answers on %s (is kmipd running with this configuration?)", socket), Err: ErrNotRunning}
		}
		return nil, &Error{Op: op, Msg: "cannot reach the admin socket " + socket, Err: err}
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	req := Request{Op: op}
	if args != nil {
		if req.Args, err = json.Marshal(args); err != nil {
			return nil, err
		}
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, &Error{Op: op, Msg: "sending the request", Err: err}
	}
	br := bufio.NewReader(c)
	for {
		line, err := readLine(br)
		if err != nil {
			if ctx.Err() != nil {
				return nil, &Error{Op: op, Msg: "interrupted", Err: ctx.Err()}
			}
			return nil, &Error{Op: op, Msg: "the server closed the connection without an answer", Err: err}
		}
		var r Reply
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, &Error{Op: op, Msg: "malformed reply", Err: err}
		}
		if r.Progress != nil && !r.Done {
			if progress != nil {
				progress(*r.Progress)
			}
			continue
		}
		switch {
		case r.Error != "":
			return nil, &Error{Op: op, Msg: r.Error}
		case r.Stream:
			if stream == nil {
				return nil, &Error{Op: op, Msg: "the server streams an answer nobody reads"}
			}
			if _, err := io.Copy(stream, br); err != nil {
				return nil, &Error{Op: op, Msg: "reading the answer", Err: err}
			}
			return nil, nil
		}
		return r.Result, nil
	}
}

func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		part, isPrefix, err := br.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, part...)
		if len(line) > maxLine {
			return nil, errors.New("reply line too long")
		}
		if !isPrefix {
			return line, nil
		}
	}
}
