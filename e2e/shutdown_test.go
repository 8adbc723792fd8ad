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
	srv := startMedia(t, loopbackConfig(22500, 22509, ""))
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

// SIGTERM with browsers connected (ICE over UDP and TCP): exit within 10 s.
func TestSIGTERMWithBrowsersExitsIn10s(t *testing.T) {
	srv := startMedia(t, loopbackConfig(22520, 22529, ""))
	a := openPage(t, classURL(srv, "bye-b", "ann", ""), "ann")
	b := openPage(t, classURL(srv, "bye-b", "bob", ""), "bob")
	waitFor(t, 15*time.Second, "both joined", func() bool { return a.peerID() != "" && b.peerID() != "" })
	ids := map[*page]string{a: a.peerID(), b: b.peerID()}
	waitMedia(t, b, []*page{a, b}, ids)
	start := time.Now()
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-srv.done:
		t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM with browsers connected")
	}
}
