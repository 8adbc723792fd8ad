package icecand

import (
	"regexp"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

func loopbackPC(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

var candidateLines = regexp.MustCompile(`(?m)^a=(candidate|end-of-candidates).*\r\n`)

// withoutCandidates leaves a description's candidates to trickling.
func withoutCandidates(d webrtc.SessionDescription) webrtc.SessionDescription {
	d.SDP = candidateLines.ReplaceAllString(d.SDP, "")
	return d
}

// An ICE restart whose candidates all trickle ahead of the descriptions
// that bring their credentials (both ways) still connects: the queue holds
// them until the description is applied. Pion alone drops them, and the
// restart stays checking with no candidate on either side.
func TestRestartCandidatesAheadOfTheirDescription(t *testing.T) {
	a, b := loopbackPC(t), loopbackPC(t)
	var qa, qb Queue // a's remote candidates (b's), and b's
	qa.Bind(a)
	qb.Bind(b)
	a.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			if err := qb.Add(c.ToJSON()); err != nil {
				t.Error(err)
			}
		}
	})
	b.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			if err := qa.Add(c.ToJSON()); err != nil {
				t.Error(err)
			}
		}
	})
	connected := func(pc *webrtc.PeerConnection) chan struct{} {
		ch := make(chan struct{}, 16)
		pc.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
			if s == webrtc.ICEConnectionStateConnected {
				ch <- struct{}{}
			}
		})
		return ch
	}
	aUp, bUp := connected(a), connected(b)
	if _, err := a.CreateDataChannel("x", nil); err != nil {
		t.Fatal(err)
	}
	negotiate := func(opts *webrtc.OfferOptions) {
		t.Helper()
		offer, err := a.CreateOffer(opts)
		if err != nil {
			t.Fatal(err)
		}
		gathered := webrtc.GatheringCompletePromise(a)
		if err := a.SetLocalDescription(offer); err != nil {
			t.Fatal(err)
		}
		<-gathered // every candidate of a reached qb before the offer
		if err := b.SetRemoteDescription(withoutCandidates(*a.LocalDescription())); err != nil {
			t.Fatal(err)
		}
		qb.Flush()
		answer, err := b.CreateAnswer(nil)
		if err != nil {
			t.Fatal(err)
		}
		gathered = webrtc.GatheringCompletePromise(b)
		if err := b.SetLocalDescription(answer); err != nil {
			t.Fatal(err)
		}
		<-gathered
		if err := a.SetRemoteDescription(withoutCandidates(*b.LocalDescription())); err != nil {
			t.Fatal(err)
		}
		qa.Flush()
		for _, up := range []chan struct{}{aUp, bUp} {
			select {
			case <-up:
			case <-time.After(10 * time.Second):
				t.Fatal("ICE did not connect")
			}
		}
	}
	negotiate(nil)
	negotiate(&webrtc.OfferOptions{ICERestart: true})
}

// A candidate naming other credentials waits; Flush applies those of the
// description then applied and drops the rest.
func TestHoldsOtherGenerations(t *testing.T) {
	a, b := loopbackPC(t), loopbackPC(t)
	if _, err := a.CreateDataChannel("x", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := a.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	var q Queue
	q.Bind(b)
	line := "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"
	early := webrtc.ICECandidateInit{Candidate: line}
	if err := q.Add(early); err != nil || len(q.pending) != 1 {
		t.Fatalf("before any description: err %v, %d held, want 1", err, len(q.pending))
	}
	if err := b.SetRemoteDescription(offer); err != nil {
		t.Fatal(err)
	}
	other := "someoneelse"
	if err := q.Add(webrtc.ICECandidateInit{Candidate: line + " ufrag " + other}); err != nil || len(q.pending) != 2 {
		t.Fatalf("another generation: err %v, %d held, want 2", err, len(q.pending))
	}
	q.Flush()
	if len(q.pending) != 0 {
		t.Fatalf("%d held after Flush", len(q.pending))
	}
	for range Max {
		_ = q.Add(webrtc.ICECandidateInit{Candidate: line, UsernameFragment: &other})
	}
	if err := q.Add(webrtc.ICECandidateInit{Candidate: line, UsernameFragment: &other}); err != ErrTooMany {
		t.Fatalf("candidate %d held: err %v, want ErrTooMany", Max+1, err)
	}
}
