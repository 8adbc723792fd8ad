package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vclass/vclass/client"
)

// serverGoroutines reads go_goroutines from the server's /metrics.
func serverGoroutines(t *testing.T, srv *mediaServer) int {
	t.Helper()
	_, body := srv.get(t, "/metrics")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	t.Fatal("no go_goroutines in /metrics")
	return 0
}

// 50 join/publish/leave cycles next to a peer that stays leave no
// goroutine and no socket behind in the server.
func TestJoinLeaveCyclesLeakNothing(t *testing.T) {
	srv := startMedia(t, loopbackConfig(34300, 34309, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	stay := joinParticipant(t, ctx, srv.WS, "churn", "stays", true)

	cycle := func(i int) {
		c, err := client.Dial(ctx, client.Options{URL: srv.WS, DisplayName: fmt.Sprintf("guest%d", i), Sources: []string{"audio:mic", "video:cam"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.JoinRoom(ctx, "churn"); err != nil {
			t.Fatal(err)
		}
		pctx, stop := context.WithCancel(ctx)
		publishSynthetic(t, pctx, c, c.PeerID)
		key := c.PeerID + "/video:cam"
		waitFor(t, 10*time.Second, "the staying peer receiving the guest", func() bool { return stay.count(key) > 0 })
		stop()
		c.Close()
	}
	cycle(0)
	pid := srv.cmd.Process.Pid
	waitFor(t, 10*time.Second, "the first guest gone", func() bool {
		_, body := srv.get(t, "/metrics")
		return containsMetric(body, "vclass_peers 1")
	})
	baseG, baseFD := serverGoroutines(t, srv), fdCount(t, pid)
	for i := 1; i <= 50; i++ {
		cycle(i)
	}
	// Peer connections close asynchronously: wait for the counts to settle.
	var g, fds int
	waitFor(t, 20*time.Second, "goroutines and sockets back to the baseline", func() bool {
		g, fds = serverGoroutines(t, srv), fdCount(t, pid)
		return g <= baseG+5 && fds <= baseFD+2
	})
	t.Logf("server goroutines %d (baseline %d), fds %d (baseline %d)", g, baseG, fds, baseFD)
}
