package e2e

import (
	"strings"
	"testing"
	"time"
)

// Chat reaches everyone, the active speaker is announced from RFC 6464
// audio levels, and MaximumIncomingBitrate caps what a browser sends.
func TestBrowserChatSpeakerAndBitrateCap(t *testing.T) {
	cfg := strings.Replace(loopbackConfig(22700, 22709, ""),
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

	// REMB of 150 kbps: once the first REMBs are in, the browser's target
	// bitrate for its camera stays under it; without the cap (control) the
	// target goes above it (Chrome starts near 300 kbps).
	waitSending(t, a)
	time.Sleep(3 * time.Second) // the first REMBs (one a second): a duration, not an event
	most := 0.0
	for range 8 {
		most = max(most, cameraTarget(a))
		time.Sleep(500 * time.Millisecond) // sampling interval
	}
	t.Logf("ann's camera target at most %.0f bps over 4 s with the cap", most)
	if most <= 0 || most > 150000 {
		t.Errorf("camera target up to %.0f bps with MaximumIncomingBitrate 150000", most)
	}
	free := startMedia(t, loopbackConfig(22710, 22719, ""))
	c := openPage(t, classURL(free, "nocap", "cid", ""), "cid")
	waitFor(t, 15*time.Second, "cid joined", func() bool { return c.peerID() != "" })
	waitSending(t, c)
	waitFor(t, 15*time.Second, "the uncapped control's camera target above 150 kbps (else the capped check proves nothing)",
		func() bool { return cameraTarget(c) > 150000 })
}

func waitSending(t *testing.T, p *page) {
	t.Helper()
	waitFor(t, 15*time.Second, p.name+" sending video", func() bool { return cameraTarget(p) > 0 })
}

// cameraTarget is the camera's target bitrate (bps) the page reports now,
// all its simulcast layers together.
func cameraTarget(p *page) float64 {
	total := 0.0
	for _, o := range p.stats().Outbound {
		if o.Kind == "video" && o.PacketsSent > 0 {
			total += o.TargetBitrate
		}
	}
	return total
}
