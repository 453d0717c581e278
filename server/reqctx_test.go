package server

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

// requestContext must answer as context.WithTimeout would, whichever of
// Err, Done and Cause is asked first.
func TestRequestContext(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "v")

	r := newRequestContext(parent, time.Hour)
	if err := r.Err(); err != nil {
		t.Fatalf("fresh: Err = %v", err)
	}
	if d, ok := r.Deadline(); !ok || time.Until(d) < 59*time.Minute {
		t.Fatalf("Deadline = %v, %v", d, ok)
	}
	if r.Value(ctxKey{}) != "v" || r.real.Load() != nil {
		t.Fatal("Value lost the parent's value, or Err/Value armed a timer")
	}
	r.release()
	if !errors.Is(r.Err(), context.Canceled) || !errors.Is(context.Cause(r), context.Canceled) {
		t.Fatalf("released: Err = %v, Cause = %v", r.Err(), context.Cause(r))
	}
	<-r.Done()

	// Expiry seen through Err alone, then Done and Cause agree.
	r = newRequestContext(parent, time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if !errors.Is(r.Err(), context.DeadlineExceeded) {
		t.Fatalf("expired: Err = %v", r.Err())
	}
	select {
	case <-r.Done():
	default:
		t.Fatal("Err reports the deadline but Done is open")
	}
	if !errors.Is(context.Cause(r), context.DeadlineExceeded) || r.Value(ctxKey{}) != "v" {
		t.Fatalf("expired: Cause = %v", context.Cause(r))
	}
	r.release()

	// Waiting on Done: it closes at the deadline, and children follow.
	r = newRequestContext(parent, 20*time.Millisecond)
	child, cancel := context.WithCancel(r)
	defer cancel()
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("child of the request context not cancelled at the deadline")
	}
	if !errors.Is(r.Err(), context.DeadlineExceeded) || !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Fatalf("after deadline: Err = %v, child %v", r.Err(), child.Err())
	}
	r.release()

	// The connection ending ends the request.
	conn, end := context.WithCancel(parent)
	r = newRequestContext(conn, time.Hour)
	done := r.Done()
	end()
	<-done
	if !errors.Is(r.Err(), context.Canceled) {
		t.Fatalf("connection cancelled: Err = %v", r.Err())
	}
	r.release()
	conn, end = context.WithCancel(parent)
	r = newRequestContext(conn, time.Hour)
	end()
	if !errors.Is(r.Err(), context.Canceled) {
		t.Fatalf("connection cancelled, Done never asked: Err = %v", r.Err())
	}

	// A parent deadline earlier than the request's wins.
	short, stop := context.WithTimeout(parent, time.Minute)
	defer stop()
	r = newRequestContext(short, time.Hour)
	if d, _ := r.Deadline(); time.Until(d) > 2*time.Minute {
		t.Fatalf("Deadline %v ignores the parent's", d)
	}
}

// The common case, a request that never waits, makes no timer.
func BenchmarkRequestContext(b *testing.B) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.Run("requestContext", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := newRequestContext(parent, 30*time.Second)
			_ = r.Err()
			r.release()
		}
	})
	b.Run("WithTimeout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(parent, 30*time.Second)
			_ = ctx.Err()
			cancel()
		}
	})
}
