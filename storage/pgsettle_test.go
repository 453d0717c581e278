package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kmipd/kmipd/storage/pgserver"
	"github.com/kmipd/kmipd/storage/pgtest"
)

// commitCutter is a TCP relay on 127.0.0.1 in front of a PostgreSQL server
// that, once armed, lets the next COMMIT (a simple-protocol Query, as pgx
// sends it) reach the server, holds back the server's answer, runs
// meanwhile (a failover, say), and then closes the client's connection: a
// commit that happened, whose acknowledgement was lost.
type commitCutter struct {
	t      *testing.T
	ln     net.Listener
	target string
	armed  atomic.Bool
	cuts   atomic.Int32
	// meanwhile runs after the server answered COMMIT and before the
	// client's connection is closed.
	meanwhile func()
}

func startCommitCutter(t *testing.T, target string) *commitCutter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &commitCutter{t: t, ln: ln, target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.serve(c) }()
		}
	}()
	return p
}

// via is raw with its (first) host replaced by the relay.
func (p *commitCutter) via(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		p.t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

func (p *commitCutter) serve(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return // the server is down: the client sees its connection end
	}
	defer up.Close()
	var cutting atomic.Bool
	answered := make(chan struct{})
	go func() { // server to client
		buf := make([]byte, 32<<10)
		for {
			n, err := up.Read(buf)
			if n > 0 && cutting.Load() {
				close(answered) // COMMIT's answer: the client never gets it
				return
			}
			if n > 0 {
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				c.Close()
				return
			}
		}
	}()
	// Client to server, message by message: the startup message has no
	// type byte, every later one has.
	first := true
	for {
		var msg []byte
		if first {
			msg = make([]byte, 4)
		} else {
			msg = make([]byte, 5)
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(msg[len(msg)-4:])
		if n < 4 || n > 1<<26 {
			return
		}
		body := make([]byte, n-4)
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		msg = append(msg, body...)
		commit := !first && msg[0] == 'Q' && bytes.Equal(bytes.TrimRight(body, "\x00; "), []byte("COMMIT"))
		if commit && p.armed.CompareAndSwap(true, false) {
			cutting.Store(true)
			if _, err := up.Write(msg); err != nil {
				return
			}
			select {
			case <-answered:
			case <-time.After(30 * time.Second):
				p.t.Error("commitCutter: the server did not answer COMMIT")
			}
			p.cuts.Add(1)
			if p.meanwhile != nil {
				p.meanwhile()
			}
			return // closes both connections: the client never learns
		}
		first = false
		if _, err := up.Write(msg); err != nil {
			return
		}
	}
}

// Over a real connection cut right after the server committed: each kind of
// exact write reports success once, and its effect is there once.
func TestLostCommitAckThroughRelay(t *testing.T) {
	ctx := context.Background()
	target, err := url.Parse(pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	cut := startCommitCutter(t, target.Host)
	p := openPG(t, cut.via(target.String()), PostgresOptions{})
	steps := []struct {
		name string
		op   func() error
		key  string
		want []byte // nil: absent
	}{
		{"Create", func() error { return p.Create(ctx, "k", []byte("created")) }, "k", []byte("created")},
		{"Swap", func() error { return p.Swap(ctx, "k", []byte("created"), []byte("swapped")) }, "k", []byte("swapped")},
		{"Apply", func() error {
			return p.Apply(ctx, []Write{{Kind: WriteCreate, Key: "b", Value: []byte("batched")}, {Kind: WriteDelete, Key: "k"}})
		}, "b", []byte("batched")},
		{"Delete", func() error { return p.Delete(ctx, "b") }, "b", nil},
	}
	for i, s := range steps {
		cut.armed.Store(true)
		if err := s.op(); err != nil {
			t.Fatalf("%s whose COMMIT answer was cut = %v, want nil", s.name, err)
		}
		if n := cut.cuts.Load(); n != int32(i+1) {
			t.Fatalf("%s: %d COMMITs cut, want %d", s.name, n, i+1)
		}
		got, err := p.Get(ctx, s.key)
		switch {
		case s.want == nil && !errors.Is(err, ErrNotFound):
			t.Fatalf("after %s: Get = %q, %v; want ErrNotFound", s.name, got, err)
		case s.want != nil && (err != nil || !bytes.Equal(got, s.want)):
			t.Fatalf("after %s: Get = %q, %v; want %q", s.name, got, err, s.want)
		}
		if n := lost(p, "committed"); n != float64(i+1) {
			t.Fatalf("after %s: lost_commits{committed} = %v, want %d", s.name, n, i+1)
		}
	}
	if _, err := p.Get(ctx, "k"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the batch's Delete of k: Get = %v, want ErrNotFound", err)
	}
	if lost(p, "reused") != 0 || lost(p, "aborted") != 0 {
		t.Fatalf("lost_commits reused %v aborted %v, want 0", lost(p, "reused"), lost(p, "aborted"))
	}
}

// A Create commits on the primary, its acknowledgement is lost, and the
// primary dies before an asynchronous standby received the commit. The
// standby is promoted and hands the same transaction id to other work,
// which commits: pg_xact_status now calls the lost Create committed. The
// store must go by the row (absent), retry, and report success only with
// the row there, on the new primary.
func TestLostCommitTransactionIDReusedAfterFailover(t *testing.T) {
	if _, err := pgserver.BinDir(); err != nil {
		t.Skipf("%v to run this test", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tmp := func(what string) string {
		// Not t.TempDir: when root, the postgres user must get through
		// every folder above the data.
		d, err := os.MkdirTemp("", "kmipd-xidreuse-"+what+"-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(d) })
		return d
	}
	primary, err := pgserver.Init(tmp("primary"))
	if err != nil {
		t.Fatal(err)
	}
	if err := primary.EnableReplication(""); err != nil { // asynchronous
		t.Fatal(err)
	}
	if err := primary.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = primary.Crash() })
	standby, err := primary.Standby(tmp("standby"), "standby")
	if err != nil {
		t.Fatal(err)
	}
	if err := standby.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := standby.Stop(); err != nil {
			t.Errorf("stop standby: %v", err)
		}
	})
	if err := primary.Exec(ctx, "postgres", "CREATE DATABASE kmipd"); err != nil {
		t.Fatal(err)
	}
	cut := startCommitCutter(t, primary.Addr())
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: cut.ln.Addr().String() + "," + standby.Addr(),
		Path: "/kmipd", RawQuery: "sslmode=disable&target_session_attrs=read-write"}
	p := openPG(t, u.String(), PostgresOptions{RetryTimeout: 30 * time.Second})
	if err := p.Put(ctx, "before", []byte("replicated")); err != nil {
		t.Fatal(err)
	}

	// Wait until the standby has replayed everything so far (the schema),
	// then detach it: from now on it receives nothing.
	pc, err := pgx.Connect(ctx, primary.URL("kmipd"))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	sc, err := pgx.Connect(ctx, standby.URL("postgres")) // kmipd may not be there yet
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close(ctx)
	waitFor := func(what string, cond func() (bool, error)) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; {
			ok, err := cond()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 30 s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var lsn string
	if err := pc.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	waitFor("standby replay", func() (bool, error) {
		var ok bool
		err := sc.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn).Scan(&ok)
		return ok, err
	})
	if _, err := sc.Exec(ctx, "ALTER SYSTEM SET primary_conninfo = ''"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	waitFor("standby's WAL receiver to stop", func() (bool, error) {
		var n int
		err := sc.QueryRow(ctx, "SELECT count(*) FROM pg_stat_wal_receiver").Scan(&n)
		return n == 0, err
	})
	var xid0 uint64
	if err := pc.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&xid0); err != nil {
		t.Fatal(err)
	}
	pc.Close(ctx)
	sc.Close(ctx)

	// The Create's COMMIT reaches the primary, which commits; while its
	// answer is held back, the primary dies, the standby is promoted and
	// commits transactions until it has handed out every id the Create's
	// transaction can have had.
	var reused uint64
	cut.meanwhile = func() {
		if err := primary.Crash(); err != nil {
			t.Errorf("crash primary: %v", err)
			return
		}
		if err := standby.Promote(); err != nil {
			t.Errorf("promote standby: %v", err)
			return
		}
		c, err := pgx.Connect(ctx, standby.URL("kmipd"))
		if err != nil {
			t.Errorf("connect to the promoted standby: %v", err)
			return
		}
		defer c.Close(ctx)
		for reused < xid0+20 {
			if err := c.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint").Scan(&reused); err != nil {
				t.Errorf("burning transaction ids: %v", err)
				return
			}
		}
	}
	cut.armed.Store(true)
	err = p.Create(ctx, "obj/alice/lost", []byte("sealed, with a random nonce"))
	if cut.cuts.Load() != 1 {
		t.Fatalf("COMMIT cut %d times, want once", cut.cuts.Load())
	}
	if t.Failed() {
		t.FailNow()
	}
	if err != nil {
		t.Fatalf("Create after the failover = %v, want success (retried on the new primary)", err)
	}
	got, err := p.Get(ctx, "obj/alice/lost")
	if err != nil || !bytes.Equal(got, []byte("sealed, with a random nonce")) {
		t.Fatalf("the acknowledged Create reads back %q, %v: an acknowledged write was lost", got, err)
	}
	mustGet(t, p, "before", []byte("replicated"))
	t.Logf("transaction ids up to %d handed out again after the failover; lost_commits reused %v, aborted %v, committed %v",
		reused, lost(p, "reused"), lost(p, "aborted"), lost(p, "committed"))
	if lost(p, "reused") != 1 {
		t.Fatalf("lost_commits{reused} = %v, want 1: pg_xact_status should have called the lost Create committed", lost(p, "reused"))
	}
}
