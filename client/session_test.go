package client

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A session that never joined still ends on Close, refuses Publish before
// Join, and Join after Close.
func TestSessionLifecycleWithoutServer(t *testing.T) {
	s := NewSession(Options{URL: "ws://127.0.0.1:1/ws", DisplayName: "Ann"}, "room")
	if _, err := s.Publish(context.Background()); err == nil {
		t.Error("Publish before Join succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := s.Join(ctx, SessionOptions{}); err == nil {
		t.Fatal("Join with nothing listening succeeded")
	}
	s.Close()
	select {
	case <-s.Done():
	case <-time.After(time.Second):
		t.Fatal("Done not closed after Close of a session that never joined")
	}
	if !errors.Is(s.Err(), ErrClosed) {
		t.Errorf("Err = %v, want ErrClosed", s.Err())
	}
	if _, err := s.Join(ctx, SessionOptions{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Join after Close: %v, want ErrClosed", err)
	}
	s.Close() // twice is fine
}

func TestBackoff(t *testing.T) {
	for n, want := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, time.Second} {
		if d := backoff(n, 0); d < want*3/4 || d > want*5/4 {
			t.Errorf("backoff(%d) = %v, want %v ± 25%%", n, d, want)
		}
	}
	if d := backoff(1, 20*time.Second); d < 3750*time.Millisecond {
		t.Errorf("backoff after 20 s = %v, want about 5 s", d)
	}
}
