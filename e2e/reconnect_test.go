package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/vclass/vclass/internal/tcpproxy"
)

// The WebSocket of a browser drops (a network change): the page reconnects,
// resumes its peer, restarts ICE, and media keeps flowing both ways; the
// other peer never sees it leave.
func TestBrowserResumesAfterConnectionLoss(t *testing.T) {
	srv := startMedia(t, loopbackConfig(34800, 34809, ""))
	proxy := tcpproxy.Start(t, strings.TrimPrefix(srv.URL, "http://"))
	viaProxy := &mediaServer{URL: "http://" + proxy.Addr()}
	a := openPage(t, classURL(viaProxy, "drop", "ann", ""), "ann")
	b := openPage(t, classURL(srv, "drop", "bob", ""), "bob")
	waitFor(t, 15*time.Second, "both joined", func() bool { return a.peerID() != "" && b.peerID() != "" })
	aID, bID := a.peerID(), b.peerID()
	ids := map[*page]string{a: aID, b: bID}
	waitMedia(t, a, []*page{a, b}, ids)
	waitMedia(t, b, []*page{a, b}, ids)

	proxy.Sever()
	waitFor(t, 20*time.Second, "ann reconnected", func() bool {
		var state string
		_ = a.eval(`document.body.dataset.state`, &state)
		return state == "joined" && a.peerID() == aID
	})
	// Media still flows both ways after the resume and ICE restarts.
	waitMedia(t, a, []*page{a, b}, ids)
	waitMedia(t, b, []*page{a, b}, ids)
	for _, id := range b.peers() {
		if id == aID {
			return
		}
	}
	t.Errorf("bob no longer lists ann (%s) after her reconnect", aID)
}
