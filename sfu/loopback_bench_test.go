package sfu

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/config"
)

// newLoopbackEngine is an engine on 127.0.0.1 with VP8 and Opus.
func newLoopbackEngine(tb testing.TB, lo, hi uint16, noBatching bool) *Engine {
	tb.Helper()
	e, err := NewEngine(EngineParams{
		NoBatching: noBatching,
		RTC:        config.RTC{MinPort: lo, MaxPort: hi, Listen: []config.Listen{{IP: "127.0.0.1", AnnouncedIP: "127.0.0.1"}}},
		Codecs: []config.Codec{
			{Kind: "audio", MimeType: "audio/opus", ClockRate: 48000, Channels: 2},
			{Kind: "video", MimeType: "video/VP8", ClockRate: 90000, RTCPFeedback: []config.Feedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}},
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// connectSubscriber makes a Subscriber with a down track of up, answered
// by a plain Pion peer connection over loopback, and waits until the down
// track is bound. The returned channel closes when the remote receives
// its first packet.
func connectSubscriber(tb testing.TB, e *Engine, up *UpTrack, id string) <-chan struct{} {
	tb.Helper()
	_, receiving := connectSubscriberWith(tb, e, up, id, nil)
	return receiving
}

// connectSubscriberWith is connectSubscriber whose remote hands the track
// to onTrack (nil: left unread).
func connectSubscriberWith(tb testing.TB, e *Engine, up *UpTrack, id string, onTrack func(*webrtc.TrackRemote)) (*Subscriber, <-chan struct{}) {
	tb.Helper()
	sub, _, receiving := connectRemote(tb, e, up, id, onTrack)
	return sub, receiving
}

// connectRemote is connectSubscriberWith that also returns the remote
// peer connection.
func connectRemote(tb testing.TB, e *Engine, up *UpTrack, id string, onTrack func(*webrtc.TrackRemote)) (*Subscriber, *webrtc.PeerConnection, <-chan struct{}) {
	tb.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	remote, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { remote.Close() })
	receiving := make(chan struct{})
	var once sync.Once
	remote.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		once.Do(func() { close(receiving) })
		if onTrack != nil {
			onTrack(tr)
		}
	})
	var sub *Subscriber
	answered := make(chan error, 1)
	var mu sync.Mutex
	sub, err = e.NewSubscriber(SubscriberParams{
		OnOffer: func(sdp string, version int, _ []AddedTrack) {
			go func() {
				if err := remote.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
					answered <- err
					return
				}
				ans, err := remote.CreateAnswer(nil)
				if err == nil {
					err = remote.SetLocalDescription(ans)
				}
				if err == nil {
					err = sub.SetAnswer(ans.SDP, version)
				}
				answered <- err
			}()
		},
		OnICECandidate: func(c *webrtc.ICECandidateInit) {
			if c != nil {
				mu.Lock()
				defer mu.Unlock()
				_ = remote.AddICECandidate(*c)
			}
		},
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sub.Close() })
	remote.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = sub.AddICECandidate(c.ToJSON())
		}
	})
	before := up.Subscribers()
	if err := sub.AddTrack(NewDownTrack(up, id, "bench")); err != nil {
		tb.Fatal(err)
	}
	if err := <-answered; err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for up.Subscribers() == before {
		if time.Now().After(deadline) {
			tb.Fatal("down track not bound after 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return sub, remote, receiving
}

// BenchmarkForwardLoopback measures the whole server-side send path per
// forwarded packet: our fan-out, Pion's RTP sender and its interceptors,
// SRTP (AES-GCM), ICE, and one sendto per packet on a loopback UDP socket.
// The subscribers are Pion peer connections in the same process; their
// receiving runs on the other core.
func BenchmarkForwardLoopback(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		for _, send := range []string{"sendmmsg", "sendto"} {
			b.Run(fmt.Sprintf("subscribers=%d/%s", n, send), func(b *testing.B) {
				benchLoopback(b, n, send == "sendto")
			})
		}
	}
}

func benchLoopback(b *testing.B, n int, noBatching bool) {
	e := newLoopbackEngine(b, 29000, 29099, noBatching)
	up := testUpTrack("up", e, vp8Codec, 1111, 0, func([]rtcp.Packet) error { return nil })
	var receiving []<-chan struct{}
	for i := range n {
		receiving = append(receiving, connectSubscriber(b, e, up, fmt.Sprintf("d%d", i)))
	}
	// Keyframes until every subscriber has DTLS up and got one.
	r := upReader{level: 127}
	seq := uint16(0)
	for _, ch := range receiving {
		for ready := false; !ready; {
			up.handle(&r, vp8Packet(seq, uint32(seq)*3000, true))
			seq++
			select {
			case <-ch:
				ready = true
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	pkt := vp8Packet(seq, uint32(seq)*3000, false)
	out0 := e.Stats.PacketsOut.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		seq++
		pkt[2], pkt[3] = byte(seq>>8), byte(seq)
		up.handle(&r, pkt)
	}
	b.StopTimer()
	sent := e.Stats.PacketsOut.Load() - out0
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/fwd-pkt")
	if sent < uint64(b.N*n)*99/100 {
		b.Fatalf("sent %d packets, want %d", sent, b.N*n)
	}
}
