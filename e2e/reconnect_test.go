package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vclass/vclass/internal/tcpproxy"
)

// The WebSocket of a browser drops (a network change): the page reconnects,
// resumes its peer, restarts ICE, and media keeps flowing both ways; the
// other peer never sees it leave.
func TestBrowserResumesAfterConnectionLoss(t *testing.T) {
	srv := startMedia(t, loopbackConfig(22800, 22809, ""))
	proxy := tcpproxy.Start(t, strings.TrimPrefix(srv.URL, "http://"))
	viaProxy := &mediaServer{URL: "http://" + proxy.Addr()}
	a := openPage(t, classURL(viaProxy, "drop", "ann", ""), "ann")
	b := openPage(t, classURL(srv, "drop", "bob", ""), "bob")
	waitFor(t, 15*time.Second, "both joined", func() bool { return a.peerID() != "" && b.peerID() != "" })
	aID, bID := a.peerID(), b.peerID()
	ids := map[*page]string{a: aID, b: bID}
	waitMedia(t, a, []*page{a, b}, ids)
	waitMedia(t, b, []*page{a, b}, ids)

	// What the page shows meanwhile, every state it passes through.
	if err := a.eval(`(() => {
		window.phases = [];
		new MutationObserver(() => window.phases.push(document.body.dataset.state + ':' +
			(document.getElementById('conn-status').hidden ? '' : document.getElementById('conn-status').textContent)))
			.observe(document.body, { attributes: true, attributeFilter: ['data-state'] });
		return true;
	})()`, nil); err != nil {
		t.Fatal(err)
	}
	proxy.Sever()
	waitFor(t, 20*time.Second, "ann reconnected", func() bool {
		var state string
		_ = a.eval(`document.body.dataset.state`, &state)
		return state == "joined" && a.peerID() == aID
	})
	var phases []string
	_ = a.eval(`window.phases`, &phases)
	if !slices.Contains(phases, "reconnecting:Reconnecting…") {
		t.Errorf("ann's page went through %q, want it to show reconnecting", phases)
	}
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

// A browser's publish whose answer is held up past the SDK's request
// timeout (the connection stalls, and may be dropped by the server's
// pings) leaves nothing published: the SDK keeps the offer, sends it again
// with repeat before its next negotiation and closes what the server made
// of the late request. Publishing that source again then works.
func TestBrowserPublishWithItsAnswerLost(t *testing.T) {
	srv := startMedia(t, loopbackConfig(27500, 27509, ""))
	proxy := tcpproxy.Start(t, strings.TrimPrefix(srv.URL, "http://"))
	viaProxy := &mediaServer{URL: "http://" + proxy.Addr()}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	bob := joinParticipant(t, ctx, srv.WS, "lost", "bob", false)
	sources := watchProducers(bob.c)
	ann := openPage(t, classURL(viaProxy, "lost", "ann", "&cam=0"), "ann")
	waitFor(t, 20*time.Second, "Ann's microphone published", func() bool { return slices.Equal(sources(), []string{"audio:mic"}) })
	// ... and Ann's page knowing it (the answer reached it), so that the
	// stall below holds up the camera's publish only.
	waitFor(t, 10*time.Second, "Ann's page publishing its microphone", func() bool {
		var n int
		_ = ann.eval(`window.vclass.client.producers.length`, &n)
		return n == 1
	})

	const publishCam = `window.__cam = navigator.mediaDevices.getUserMedia({ video: true })
		.then((s) => window.vclass.client.publish(s.getVideoTracks()[0], 'video:cam'))
		.then(() => 'ok', (err) => err.code ?? String(err)); true`
	result := func() string {
		var r string
		if err := ann.eval(`window.__cam ?? Promise.resolve('')`, &r); err != nil {
			return err.Error()
		}
		return r
	}
	proxy.Stall()
	if err := ann.eval(publishCam, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the publish failing", func() bool { r := result(); return r != "" && r != "ok" })
	t.Logf("the publish failed with %q", result())
	proxy.Resume()

	if err := ann.eval(publishCam, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the camera published again", func() bool { return result() == "ok" })
	waitFor(t, 10*time.Second, "Ann's camera and microphone, once each", func() bool {
		return slices.Equal(sources(), []string{"audio:mic", "video:cam"})
	})
	t.Logf("Ann's producers as Bob sees them: %v", sources())
	cam := ann.peerID() + "/video:cam"
	waitFor(t, 15*time.Second, "Bob receiving Ann's camera", func() bool { return bob.count(cam) > 30 })
}
