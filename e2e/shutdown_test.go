package e2e

import (
	"context"
	"encoding/json"
	"syscall"
	"testing"
	"time"
)

// SIGTERM: peers are told why, and the process exits cleanly within 10 s.
func TestSIGTERMTellsPeersAndExits(t *testing.T) {
	srv := startMedia(t, loopbackConfig(34500, 34509, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := joinParticipant(t, ctx, srv.WS, "bye", "a", true)
	b := joinParticipant(t, ctx, srv.WS, "bye", "b", true)
	waitFor(t, 10*time.Second, "media flowing", func() bool { return b.count(a.c.PeerID+"/video:cam") > 0 })
	reason := make(chan string, 1)
	a.c.On("disconnect", func(data json.RawMessage) {
		var n struct{ Reason string }
		_ = json.Unmarshal(data, &n)
		reason <- n.Reason
	})
	start := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reason:
		if r != "serverShutdown" {
			t.Errorf("disconnect reason %q, want serverShutdown", r)
		}
	case <-time.After(10 * time.Second):
		t.Error("no disconnect notification")
	}
	select {
	case <-srv.done:
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("exit took %v", took)
	}
	if code := srv.state.ExitCode(); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	select {
	case <-a.c.Done():
	case <-time.After(2 * time.Second):
		t.Error("client connection still open after the server exited")
	}
}
