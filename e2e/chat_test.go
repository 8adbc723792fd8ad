package e2e

import (
	"strings"
	"testing"
	"time"
)

// Chat reaches everyone, the active speaker is announced from RFC 6464
// audio levels, and MaximumIncomingBitrate caps what a browser sends.
func TestBrowserChatSpeakerAndBitrateCap(t *testing.T) {
	cfg := strings.Replace(loopbackConfig(34700, 34709, ""),
		`"WebRtcTransportSettings": {`, `"WebRtcTransportSettings": {"MaximumIncomingBitrate": 150000, `, 1)
	srv := startMedia(t, cfg)
	a := openPage(t, classURL(srv, "chat", "ann", ""), "ann")
	b := openPage(t, classURL(srv, "chat", "bob", ""), "bob")
	waitFor(t, 15*time.Second, "both joined", func() bool { return a.peerID() != "" && b.peerID() != "" })

	if err := a.eval(`window.vclass.client.sendMessage("hello <b>class</b>")`, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "bob receiving ann's message", func() bool {
		var texts []string
		_ = b.eval(`window.vclass.state.messages.map(m => m.text)`, &texts)
		for _, s := range texts {
			if s == "hello <b>class</b>" {
				return true
			}
		}
		return false
	})

	// Chromium's fake microphone beeps: someone becomes the active speaker.
	waitFor(t, 15*time.Second, "an active speaker on bob's page", func() bool {
		var id string
		_ = b.eval(`window.vclass.state.activeSpeaker || ""`, &id)
		return id != ""
	})

	// REMB of 150 kbps: the browser's target bitrate for its camera stays
	// under it, while without the cap (control) it climbs past it.
	capped := cameraTarget(t, a, 6*time.Second)
	if capped <= 0 || capped > 150000 {
		t.Errorf("camera target %.0f bps with MaximumIncomingBitrate 150000", capped)
	}
	free := startMedia(t, loopbackConfig(34710, 34719, ""))
	c := openPage(t, classURL(free, "nocap", "cid", ""), "cid")
	waitFor(t, 15*time.Second, "cid joined", func() bool { return c.peerID() != "" })
	if uncapped := cameraTarget(t, c, 6*time.Second); uncapped <= 150000 {
		t.Errorf("control without a cap: camera target %.0f bps, want above 150000 (the capped test proves nothing otherwise)", uncapped)
	}
}

// cameraTarget is the camera's target bitrate (bps) the page reports after
// it has been sending for d.
func cameraTarget(t *testing.T, p *page, d time.Duration) float64 {
	t.Helper()
	waitFor(t, 15*time.Second, p.name+" sending video", func() bool {
		for _, o := range p.stats().Outbound {
			if o.Kind == "video" && o.PacketsSent > 0 {
				return true
			}
		}
		return false
	})
	time.Sleep(d) // let the congestion controller settle: a duration, not an event
	for _, o := range p.stats().Outbound {
		if o.Kind == "video" {
			t.Logf("%s camera target bitrate %.0f bps", p.name, o.TargetBitrate)
			return o.TargetBitrate
		}
	}
	return 0
}
