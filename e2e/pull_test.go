package e2e

import (
	"strings"
	"testing"
	"time"
)

// Pull mode in Chromium: a page receives nothing until it pulls, then
// exactly the peer it pulled.
func TestBrowserPullMode(t *testing.T) {
	srv := startMedia(t, strings.Replace(loopbackConfig(22570, 22579, ""), `"ServeMode": "Open"`, `"ServeMode": "Pull"`, 1))
	ann := openPage(t, classURL(srv, "seminar", "ann", ""), "ann")
	cid := openPage(t, classURL(srv, "seminar", "cid", ""), "cid")
	bob := openPage(t, classURL(srv, "seminar", "bob", "&cam=0&mic=0"), "bob")
	waitFor(t, 15*time.Second, "all joined", func() bool { return ann.peerID() != "" && cid.peerID() != "" && bob.peerID() != "" })
	if n := len(bob.stats().Inbound); n != 0 {
		t.Fatalf("bob receives %d tracks before pulling", n)
	}
	if err := bob.click(`[data-action="watch"][data-peer-id="` + ann.peerID() + `"]`); err != nil {
		t.Fatalf("watch: %v", err)
	}
	waitFor(t, 20*time.Second, "bob decoding ann and hearing her", func() bool {
		frames, _ := bob.stats().inboundFrom(ann.peerID(), "video:cam")
		_, energy := bob.stats().inboundFrom(ann.peerID(), "audio:mic")
		return frames > 10 && energy > 0
	})
	for _, in := range bob.stats().Inbound {
		if in.PeerID != ann.peerID() {
			t.Errorf("bob receives %s of %s, which he did not pull", in.Source, in.PeerID)
		}
	}
}
