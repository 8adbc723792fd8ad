package sfu

import (
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/config"
)

// A publisher's packets are read on the direct path once its transport is
// up, and what it is told of them is the server's own, whichever path read
// them: NACKs for the numbers that never came, receiver reports that count
// them lost and answer its sender reports, and transport-wide congestion
// feedback. A forged packet of a direct stream is dropped. Without the
// direct path (no batched sockets, as on ICE-TCP) the feedback is the
// same, through Pion.
func TestPublisherDirectPath(t *testing.T) {
	for i, noBatching := range []bool{false, true} {
		t.Run(fmt.Sprintf("noBatching=%v", noBatching), func(t *testing.T) {
			testPublisherPaths(t, uint16(29240+10*i), noBatching)
		})
	}
}

func testPublisherPaths(t *testing.T, ports uint16, noBatching bool) {
	e, err := NewEngine(EngineParams{
		NoBatching: noBatching,
		RTC:        config.RTC{MinPort: ports, MaxPort: ports + 9, Listen: []config.Listen{{IP: "127.0.0.1", AnnouncedIP: "127.0.0.1"}}},
		Codecs: []config.Codec{{Kind: "video", MimeType: "video/VP8", ClockRate: 90000, RTCPFeedback: []config.Feedback{
			{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "transport-cc"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })

	// The client: Pion with its default interceptors (sender reports) and
	// transport-wide sequence numbers, on a socket of the test's own, so
	// that the test can send from its address too.
	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: sock})
	t.Cleanup(func() { mux.Close() })
	se := webrtc.SettingEngine{}
	se.SetICEUDPMux(mux)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		t.Fatal(err)
	}
	if err := webrtc.ConfigureTWCCHeaderExtensionSender(me, reg); err != nil {
		t.Fatal(err)
	}
	remote, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg)).
		NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { remote.Close() })
	local, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "v", "s")
	if err != nil {
		t.Fatal(err)
	}
	sender, err := remote.AddTrack(local)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		nacked  []uint16
		reports []rtcp.ReceptionReport
		twccs   int
		arrived int // packets the transport-wide feedback says arrived
	)
	go func() {
		for {
			pkts, _, err := sender.ReadRTCP()
			if err != nil {
				return
			}
			mu.Lock()
			for _, p := range pkts {
				switch p := p.(type) {
				case *rtcp.TransportLayerNack:
					for _, pair := range p.Nacks {
						nacked = append(nacked, pair.PacketList()...)
					}
				case *rtcp.ReceiverReport:
					reports = append(reports, p.Reports...)
				case *rtcp.TransportLayerCC:
					twccs++
					arrived += len(p.RecvDeltas)
				}
			}
			mu.Unlock()
		}
	}()

	var up atomic.Pointer[UpTrack]
	pub, err := e.NewPublisher(PublisherParams{
		TrackID: func(string) (string, bool) { return "cam", true },
		OnTrack: func(_ string, u *UpTrack) { up.Store(u) },
		OnICECandidate: func(c *webrtc.ICECandidateInit) {
			if c != nil {
				_ = remote.AddICECandidate(*c)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	remote.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = pub.AddICECandidate(c.ToJSON())
		}
	})
	offer, err := remote.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	answer, _, err := pub.Negotiate(offer.SDP)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}

	// 30 packets a 100 ms, with 5 numbers in each hundred never sent.
	lost := func(seq uint16) bool { return seq%100 >= 40 && seq%100 < 45 }
	var seq uint16 = 65000 // across the wrap
	var sent []uint16
	send := func(n int) {
		for range n {
			seq++
			if lost(seq) {
				continue
			}
			p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: uint32(seq) * 3000, Marker: true},
				Payload: []byte{0x10, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 1, 2, 3}} // a VP8 keyframe, 320x240
			if err := local.WriteRTP(p); err != nil {
				t.Fatal(err)
			}
			sent = append(sent, seq)
			time.Sleep(3 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.Stats.DirectIn.Load() == 0 && !noBatching || e.Stats.PacketsIn.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no packet read on the direct path after 10 s (%d through Pion)", e.Stats.PacketsIn.Load())
		}
		send(10)
	}
	first, sentBefore, inBefore, directBefore := seq+1, len(sent), e.Stats.PacketsIn.Load(), e.Stats.DirectIn.Load()
	send(700)
	time.Sleep(1200 * time.Millisecond) // a receiver report, answering a sender report
	send(10)
	time.Sleep(300 * time.Millisecond)

	in := e.Stats.PacketsIn.Load()
	// A few more than sent: the client's NACK responder resends what the
	// server asked for again when a loaded machine delayed it (2 % at most).
	if got, want := in-inBefore, uint64(len(sent)-sentBefore); got < want || got > want+want/50 {
		t.Errorf("the server read %d packets, the client sent %d", got, want)
	}
	if got, want := e.Stats.DirectIn.Load()-directBefore, in-inBefore; got+3 < want && !noBatching || got != 0 && noBatching {
		t.Errorf("%d of %d packets read on the direct path, want all (none without it)", got, want)
	}
	u := up.Load()
	l := u.layer(0)
	if sr := l.sr.Load(); sr == nil {
		t.Error("no sender report reached the track")
	}
	mu.Lock()
	defer mu.Unlock()
	var want []uint16 // lost since the direct path, but for the last few
	lostSince := func(from uint16) int {
		n := 0
		for s := from; s != seq; s++ {
			if lost(s) {
				n++
			}
		}
		return n
	}
	for s := first; s != seq; s++ {
		if lost(s) && int16(seq-s) > 20 {
			want = append(want, s)
		}
	}
	for _, s := range want {
		if !slices.Contains(nacked, s) {
			t.Errorf("%d was never NACKed (NACKed: %v)", s, nacked)
			break
		}
	}
	for _, s := range nacked {
		if !lost(s) {
			t.Errorf("%d NACKed, but it came", s)
			break
		}
	}
	if len(reports) == 0 {
		t.Fatal("no receiver report")
	}
	last := reports[len(reports)-1]
	if last.SSRC != l.ssrc || last.TotalLost < uint32(lostSince(first)) || last.TotalLost > uint32(lostSince(sent[0])) {
		t.Errorf("report %+v: want ssrc %d, %d-%d lost", last, l.ssrc, lostSince(first), lostSince(sent[0]))
	}
	if d := seq - uint16(last.LastSequenceNumber); d > 20 || last.LastSequenceNumber>>16 > 1 {
		t.Errorf("report's highest number %#x, want at most a cycle and about %d", last.LastSequenceNumber, seq)
	}
	if last.LastSenderReport == 0 || last.Delay == 0 {
		t.Errorf("report %+v does not answer a sender report", last)
	}
	// Every packet the server read, through Pion (the first ones) or not.
	if twccs < 10 || arrived < int(in) || arrived > len(sent)+50 {
		t.Errorf("%d transport-wide feedback packets saying %d packets arrived (the server read %d), want one every 100 ms and all",
			twccs, arrived, in)
	}

	if noBatching {
		return
	}
	// A packet of the stream that is not the client's: dropped.
	refused := e.Stats.RTPRefused.Load()
	forged := make([]byte, 60)
	copy(forged, []byte{0x80, 96, byte(seq >> 8), byte(seq + 1), 0, 0, 0, 1,
		byte(l.ssrc >> 24), byte(l.ssrc >> 16), byte(l.ssrc >> 8), byte(l.ssrc)})
	pair, err := remote.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatal("no selected pair", err)
	}
	to := &net.UDPAddr{IP: net.ParseIP(pair.Remote.Address), Port: int(pair.Remote.Port)}
	if _, err := sock.WriteTo(forged, to); err != nil {
		t.Fatal(err)
	}
	for e.Stats.RTPRefused.Load() == refused {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatal("a forged packet was not refused")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := e.Stats.PacketsIn.Load(); got != in {
		t.Errorf("%d packets more read after the forged one", got-in)
	}
}
