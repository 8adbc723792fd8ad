package sfu

import (
	"cmp"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/config"
)

// fuzzEngine is an engine with the default codecs on one loopback port
// that the system picks: what a stranger's descriptions meet, without a
// route off the machine for the ICE checks their candidates start.
func fuzzEngine(tb testing.TB) *Engine {
	tb.Helper()
	e, err := NewEngine(EngineParams{
		RTC:    config.RTC{Listen: []config.Listen{{IP: "127.0.0.1", AnnouncedIP: "127.0.0.1"}}},
		Codecs: config.DefaultMedia().Codecs,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// checkBadSDP fails t unless err is nil or says the description is bad.
func checkBadSDP(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && !errors.Is(err, ErrBadSDP) {
		t.Fatalf("%s refused with %v, not ErrBadSDP", what, err)
	}
}

// FuzzPublisherOffer: a publisher's offer, and a second one that
// renegotiates, are refused only with ErrBadSDP (the client's badSdp),
// never with a panic; OfferedSections refuses what Negotiate would; an
// offer taken is answered with a description that parses and accepts
// only m-lines the offer sends on, each once, of the kind offered; and a
// refused offer leaves the publisher able to take a good one.
func FuzzPublisherOffer(f *testing.F) {
	for _, seed := range [][2]string{
		{chromeOffer, ""},
		{firefoxOffer, ""},
		{simOffer, ""},
		{chromeOffer, strings.Replace(chromeOffer, "a=simulcast:send q;h;f", "a=simulcast:send q;~h;f", 1)},
		{simOffer, strings.Replace(simOffer, "a=ssrc-group:SIM 100 200 300\r\n", "", 1)},
		{"this is not SDP", ""},
		{strings.ReplaceAll(chromeOffer, "a=fingerprint:", "a=x-fingerprint:"), chromeOffer},
	} {
		f.Add(seed[0], seed[1])
	}
	e := fuzzEngine(f)
	f.Fuzz(func(t *testing.T, first, second string) {
		pub, err := e.NewPublisher(PublisherParams{
			TrackID:        func(string) (string, bool) { return "", false },
			OnTrack:        func(string, *UpTrack) {},
			OnICECandidate: func(*webrtc.ICECandidateInit) {},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer pub.Close()
		taken := "" // the last offer taken
		for _, offer := range []string{first, second} {
			if offer == "" {
				continue
			}
			sections, serr := OfferedSections(offer)
			checkBadSDP(t, "OfferedSections", serr)
			answer, accepted, err := pub.Negotiate(offer)
			checkBadSDP(t, "Negotiate", err)
			if err != nil {
				// A refusal leaves the publisher as it was: a good offer
				// (the one taken last, else a browser's) is still taken.
				good := cmp.Or(taken, chromeOffer)
				if _, _, err := pub.Negotiate(good); err != nil {
					t.Fatalf("after an offer refused, a good one is refused too: %v", err)
				}
				taken = good
				continue
			}
			taken = offer
			if serr != nil {
				t.Fatalf("OfferedSections refused an offer Negotiate took: %v", serr)
			}
			var d sdp.SessionDescription
			if err := d.UnmarshalString(answer); err != nil {
				t.Fatalf("the answer does not parse: %v\n%s", err, answer)
			}
			seen := map[string]bool{}
			for _, a := range accepted {
				if seen[a.Mid] {
					t.Fatalf("m-line %q accepted twice: %+v", a.Mid, accepted)
				}
				seen[a.Mid] = true
				if !offersSection(sections, a) {
					t.Fatalf("accepted %+v, which the offer does not send on (it sends %+v)", a, sections)
				}
			}
		}
	})
}

// offersSection reports whether sections has a's mid with a's kind.
func offersSection(sections []MediaSection, a MediaSection) bool {
	for _, s := range sections {
		if s.Mid == a.Mid && s.Kind == a.Kind {
			return true
		}
	}
	return false
}

// fuzzSubscriber is a subscriber sending one VP8 track, whose offers
// come on a channel.
type fuzzSubscriber struct {
	sub    *Subscriber
	offers chan fuzzOffer
}

type fuzzOffer struct {
	sdp     string
	version int
}

func newFuzzSubscriber(t *testing.T, e *Engine, up *UpTrack) *fuzzSubscriber {
	s := &fuzzSubscriber{offers: make(chan fuzzOffer, 4)}
	sub, err := e.NewSubscriber(SubscriberParams{
		Name:           "fuzz",
		OnOffer:        func(sdp string, version int, _ []AddedTrack) { s.offers <- fuzzOffer{sdp, version} },
		OnICECandidate: func(*webrtc.ICECandidateInit) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.sub = sub
	if err := sub.AddTrack(NewDownTrack(up, "d", "s")); err != nil {
		sub.Close()
		t.Fatal(err)
	}
	return s
}

// next waits for the subscriber's next offer.
func (s *fuzzSubscriber) next(t *testing.T) fuzzOffer {
	t.Helper()
	select {
	case o := <-s.offers:
		return o
	case <-time.After(5 * time.Second):
		t.Fatal("no offer within 5 s (the subscriber cannot offer again)")
	}
	return fuzzOffer{}
}

// FuzzSubscriberAnswer: an answer to a subscriber's offer is taken or
// refused with ErrBadSDP, never a panic or another error; and after a
// refusal the subscriber still takes a browser's good answer, to the offer
// that waits or to the one it makes again when Pion gave that up.
func FuzzSubscriberAnswer(f *testing.F) {
	for _, seed := range []string{
		chromeAnswer,
		strings.Replace(chromeAnswer, "a=setup:active", "a=setup:passive", 1),
		strings.Replace(chromeAnswer, "a=recvonly", "a=inactive", 1),
		strings.Replace(chromeAnswer, "m=video 9", "m=video 0", 1),
		strings.Replace(chromeAnswer, "a=mid:0", "a=mid:7", 1),
		strings.Replace(chromeAnswer, "a=rtpmap:97 VP8/90000", "a=rtpmap:97 VP9/90000", 1),
		strings.Replace(chromeAnswer, "a=ice-ufrag:Zr5t\r\n", "", 1),
		strings.Replace(chromeAnswer, "m=video 9 UDP/TLS/RTP/SAVPF 97 98", "m=video 9 UDP/TLS/RTP/SAVPF 120", 1),
		"v=0\r\n",
	} {
		f.Add(seed)
	}
	e := fuzzEngine(f)
	up := testUpTrack("up", e, e.codecs[1], 1111, 0, func([]rtcp.Packet) error { return nil })
	f.Fuzz(func(t *testing.T, answer string) {
		s := newFuzzSubscriber(t, e, up)
		defer s.sub.Close()
		o := s.next(t)
		err := s.sub.SetAnswer(answer, o.version)
		checkBadSDP(t, "SetAnswer", err)
		if err == nil {
			return
		}
		err = s.sub.SetAnswer(chromeAnswer, o.version)
		if errors.Is(err, ErrStaleVersion) {
			o = s.next(t) // Pion gave the offer up: it comes again
			err = s.sub.SetAnswer(chromeAnswer, o.version)
		}
		if err != nil {
			t.Fatalf("after an answer refused, a good one is refused too: %v", err)
		}
	})
}
