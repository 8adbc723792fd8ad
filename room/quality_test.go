package room

import (
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/sfu"
)

// link is a connected transport's measures.
func link(loss float64, rtt time.Duration) sfu.LinkQuality {
	return sfu.LinkQuality{State: webrtc.PeerConnectionStateConnected, Loss: loss, Measured: true, RTT: rtt}
}

func TestGradeLink(t *testing.T) {
	ms := time.Millisecond
	limited, paused, unmeasured := link(0, 20*ms), link(0, 20*ms), link(0.5, 20*ms)
	limited.Limited, paused.Paused, unmeasured.Measured = true, true, false
	for _, tt := range []struct {
		name string
		q    sfu.LinkQuality
		want grade
	}{
		{"clean", link(0, 20*ms), gradeGood},
		{"under 2.5% loss", link(0.024, 20*ms), gradeGood},
		{"2.5% loss", link(0.025, 20*ms), gradeFair},
		{"under 10% loss", link(0.099, 20*ms), gradeFair},
		{"10% loss", link(0.10, 20*ms), gradePoor},
		{"300 ms round trip", link(0, 300*ms), gradeFair},
		{"800 ms round trip", link(0, 800*ms), gradePoor},
		{"too few packets to count loss", unmeasured, gradeGood},
		{"video held below what it wants", limited, gradeFair},
		{"video paused for bandwidth", paused, gradePoor},
		{"connecting", sfu.LinkQuality{State: webrtc.PeerConnectionStateConnecting}, gradeNone},
		{"disconnected", sfu.LinkQuality{State: webrtc.PeerConnectionStateDisconnected}, gradePoor},
		{"failed", sfu.LinkQuality{State: webrtc.PeerConnectionStateFailed}, gradePoor},
		{"closed", sfu.LinkQuality{State: webrtc.PeerConnectionStateClosed}, gradeNone},
	} {
		if got := gradeLink(tt.q, 1); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	// With the margin, 2% loss or 250 ms is no longer good.
	if got := gradeLink(link(0.021, 20*ms), betterMargin); got != gradeFair {
		t.Errorf("2.1%% loss with the margin: %v, want fair", got)
	}
	if got := gradeLink(link(0, 250*ms), betterMargin); got != gradeFair {
		t.Errorf("250 ms with the margin: %v, want fair", got)
	}
}

// A grade falls at once and rises only after betterChecks checks clear of
// the threshold by the margin.
func TestLinkScoreHysteresis(t *testing.T) {
	ms := time.Millisecond
	steps := []struct {
		loss float64
		want grade
	}{
		{0, gradeGood},     // the first check sets the grade
		{0.03, gradeFair},  // worse at once
		{0.12, gradePoor},  // and again
		{0.021, gradePoor}, // better: one check
		{0.021, gradeFair}, // two: fair (2.1% is not under the margin of 2.5%)
		{0.01, gradeFair},  // good with the margin: one check
		{0.024, gradeFair}, // good, not with the margin: the count starts again
		{0.01, gradeFair},  // one
		{0.01, gradeGood},  // two
		{0.024, gradeGood}, // under the threshold: stays
		{0.11, gradePoor},  // a burst: at once
		{0, gradePoor},     // one
		{0.15, gradePoor},  // worse again: the count starts again
		{0, gradePoor},     // one
		{0, gradeGood},     // two: good at once, clear of both thresholds
		{0.026, gradeFair}, // at the threshold
		{0.024, gradeFair}, // under it but inside the margin: stays
		{0.024, gradeFair}, // ... however long
		{0.024, gradeFair}, // ...
		{0.0, gradeFair},   // one
		{0.0, gradeGood},   // two
		{0.0, gradeGood},   // stays
		{0.099, gradeFair}, // fair at once
		{0.099, gradeFair}, // stays
		{0.5, gradePoor},   // poor
		{0.099, gradePoor}, // fair but not with the margin (8%): stays poor
		{0.099, gradePoor}, // ...
		{0.079, gradePoor}, // one
		{0.079, gradeFair}, // two
		{0.0, gradeFair},   // one
		{0.0, gradeGood},   // two
		{0.0, gradeGood},   // stays
		{0.0, gradeGood},   // stays
		{0.025, gradeFair}, // fair at the threshold
		{0.0, gradeFair},   // one
		{0.0, gradeGood},   // two
	}
	var s linkScore
	for i, st := range steps {
		q := link(st.loss, 20*ms)
		if got := s.update(&q); got != st.want {
			t.Fatalf("check %d (loss %.3f): %v, want %v", i, st.loss, got, st.want)
		}
	}
	// A transport that goes away forgets its grade; one that connects
	// again starts afresh.
	if got := s.update(nil); got != gradeNone {
		t.Errorf("no transport: %v, want none", got)
	}
	q := link(0.2, 20*ms)
	if got := s.update(&q); got != gradePoor {
		t.Errorf("after none: %v, want poor at once", got)
	}
}

func TestPeerScore(t *testing.T) {
	ms := time.Millisecond
	good, poor := link(0.001, 40*ms), link(0.2, 90*ms)
	var s peerScore
	if _, ok := s.update("p", nil, nil); ok {
		t.Error("a peer without transports is graded")
	}
	q, ok := s.update("p", &good, nil)
	want := PeerQuality{PeerID: "p", Quality: "good", Upload: "good", LossPercent: 0.1, RTTMs: 40}
	if !ok || q != want {
		t.Errorf("upload only: %+v, want %+v", q, want)
	}
	q, _ = s.update("p", &good, &poor)
	want = PeerQuality{PeerID: "p", Quality: "poor", Upload: "good", Download: "poor", LossPercent: 20, RTTMs: 90}
	if q != want {
		t.Errorf("poor download: %+v, want %+v", q, want)
	}
	connecting := sfu.LinkQuality{State: webrtc.PeerConnectionStateConnecting}
	q, _ = s.update("p", &connecting, &poor)
	want = PeerQuality{PeerID: "p", Quality: "poor", Download: "poor", LossPercent: 20, RTTMs: 90}
	if q != want {
		t.Errorf("upload connecting: %+v, want %+v", q, want)
	}
	b, _ := json.Marshal(q)
	if string(b) != `{"peerId":"p","quality":"poor","download":"poor","lossPercent":20,"rttMs":90}` {
		t.Errorf("JSON %s", b)
	}
}

// qualityNotes are the connectionQuality notifications among notes, each
// as its entries by peer id.
func qualityNotes(t testing.TB, notes []note) []map[string]PeerQuality {
	var out []map[string]PeerQuality
	for _, n := range notes {
		if n.Method != "connectionQuality" {
			continue
		}
		var d struct {
			Peers []PeerQuality `json:"peers"`
		}
		if err := json.Unmarshal([]byte(n.Raw), &d); err != nil {
			t.Fatalf("connectionQuality %s: %v", n.Raw, err)
		}
		byID := map[string]PeerQuality{}
		for _, q := range d.Peers {
			byID[q.PeerID] = q
		}
		out = append(out, byID)
	}
	return out
}

// latestQuality merges the connectionQuality notifications among notes
// (each lists the peers whose grades changed).
func latestQuality(t testing.TB, notes []note) map[string]PeerQuality {
	all := map[string]PeerQuality{}
	for _, byID := range qualityNotes(t, notes) {
		for id, q := range byID {
			all[id] = q
		}
	}
	return all
}

// Every peer, the recorder too, is told the visible peers' qualities, as
// they change; a peer that starts later gets them all at once.
func TestConnectionQualityNotifications(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "quality", "Ann", "audio:mic", "video:cam")
	b, _ := joinClient(t, m, "quality", "Bob")
	rec, _ := joinClientAs(t, m, "quality", "Recorder", auth.RoleRecorder)
	a.peer.Start()
	b.peer.Start()
	rec.peer.Start()
	prods := a.mustPublish("audio:mic", "video:cam")
	for _, n := range b.newConsumers(2) {
		b.waitMedia(n.str("consumerId"))
	}
	rec.newConsumers(2)

	// Ann publishes and receives nothing; Bob receives.
	ann, bob := a.peer.ID(), b.peer.ID()
	both := func(notes []note, _ bool) bool {
		q := latestQuality(t, notes)
		return q[ann].Upload == "good" && q[bob].Download == "good"
	}
	for _, c := range []*testClient{a, b, rec} {
		c.sink.waitFor(t, c.name+" told Ann's upload and Bob's download are good", both)
	}
	q := latestQuality(t, b.sink.all())
	if q[ann].Quality != "good" || q[ann].Download != "" || q[bob].Quality != "good" || q[bob].Upload != "" {
		t.Errorf("Bob was told %+v", q)
	}
	if _, ok := q[rec.peer.ID()]; ok {
		t.Errorf("the recorder is listed: %+v", q)
	}
	// The server's consent checks time the round trip (under a
	// millisecond here, so rttMs says 0).
	eventually(t, "a round trip on Ann's send transport", func() bool {
		up, _ := a.peer.linkQualities()
		return up != nil && up.RTT > 0
	})

	c, _ := joinClient(t, m, "quality", "Cid")
	c.peer.Start()
	first := c.sink.waitFor(t, "Cid's first connectionQuality", func(notes []note, _ bool) bool {
		return len(qualityNotes(t, notes)) > 0
	})
	if got := qualityNotes(t, first)[0]; got[ann].Upload != "good" || got[bob].Download != "good" {
		t.Errorf("Cid's first connectionQuality: %+v, want Ann and Bob graded", got)
	}
	// Cid's grades come with the checks after he gets media.
	for _, n := range c.newConsumers(len(prods)) {
		c.waitMedia(n.str("consumerId"))
	}
	b.sink.waitFor(t, "Bob told of Cid's download", func(notes []note, _ bool) bool {
		return latestQuality(t, notes)[c.peer.ID()].Download != ""
	})
	// A notification lists only what changed: Ann's grades, unchanged
	// on loopback, are not repeated with Cid's.
	for _, byID := range qualityNotes(t, b.sink.all()) {
		if _, ok := byID[c.peer.ID()]; ok {
			if _, again := byID[ann]; again {
				t.Errorf("Ann's unchanged grades sent again with Cid's: %+v", byID)
			}
		}
	}
}

// dropEvery is a client interceptor that drops every nth RTP packet it
// sends on each stream: loss the server measures.
type dropEvery struct {
	interceptor.NoOp
	n int64
}

func (d *dropEvery) BindLocalStream(_ *interceptor.StreamInfo, w interceptor.RTPWriter) interceptor.RTPWriter {
	var count atomic.Int64
	return interceptor.RTPWriterFunc(func(h *rtp.Header, payload []byte, a interceptor.Attributes) (int, error) {
		if count.Add(1)%d.n == 0 {
			return len(payload), nil
		}
		return w.Write(h, payload, a)
	})
}

// BindRemoteStream drops every nth packet received, before the
// interceptors registered after it (TWCC feedback) see it.
func (d *dropEvery) BindRemoteStream(_ *interceptor.StreamInfo, r interceptor.RTPReader) interceptor.RTPReader {
	var count atomic.Int64
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		for {
			n, a, err := r.Read(b, a)
			if err != nil || count.Add(1)%d.n != 0 {
				return n, a, err
			}
		}
	})
}

type dropFactory struct{ n int64 }

func (f dropFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &dropEvery{n: f.n}, nil
}

// A publisher that loses a fifth of its packets on the way is told its
// upload is poor, with about 20 % loss; its receiver's download stays good.
func TestConnectionQualitySeesUploadLoss(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "lossy", "Ann", "video:cam")
	b, _ := joinClient(t, m, "lossy", "Bob")
	var reg interceptor.Registry
	reg.Add(dropFactory{n: 5})
	a.mu.Lock()
	a.api = webrtc.NewAPI(webrtc.WithSettingEngine(clientSettings()), webrtc.WithInterceptorRegistry(&reg))
	a.mu.Unlock()
	a.peer.Start()
	b.peer.Start()
	a.mustPublish("video:cam")
	for _, n := range b.newConsumers(1) {
		b.waitMedia(n.str("consumerId"))
	}
	ann, bob := a.peer.ID(), b.peer.ID()
	notes := a.sink.waitFor(t, "Ann told her upload is poor", func(notes []note, _ bool) bool {
		q := latestQuality(t, notes)
		return q[ann].Upload == "poor" && q[bob].Download != ""
	})
	q := latestQuality(t, notes)
	if l := q[ann].LossPercent; l < 15 || l > 25 || q[ann].Quality != "poor" {
		t.Errorf("Ann: %+v, want poor with about 20%% loss", q[ann])
	}
	if q[bob].Download != "good" {
		t.Errorf("Bob: %+v, want a good download", q[bob])
	}
}

// A subscriber that loses a fifth of what it is sent, by its transport-wide
// feedback, is graded a poor download; the publisher's upload stays good.
func TestConnectionQualitySeesDownloadLoss(t *testing.T) {
	t.Parallel()
	// An engine that asks for transport-wide feedback.
	e, err := sfu.NewEngine(sfu.EngineParams{
		RTC: config.RTC{
			MinPort: testMinPort, MaxPort: testMaxPort,
			Listen: []config.Listen{{IP: "127.0.0.1", AnnouncedIP: "127.0.0.1"}},
		},
		Codecs: []config.Codec{
			{Kind: "audio", MimeType: "audio/opus", ClockRate: 48000, Channels: 2, RTCPFeedback: []config.Feedback{{Type: "transport-cc"}}},
			{Kind: "video", MimeType: "video/VP8", ClockRate: 90000, RTCPFeedback: []config.Feedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "transport-cc"}}},
		},
	})
	if err != nil {
		t.Fatalf("sfu.NewEngine: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	m := NewManager(Params{Engine: e, ServeMode: config.ServeOpen, EmptyGrace: time.Minute})
	t.Cleanup(func() { m.Drain("serverShutdown") })
	a, _ := joinClient(t, m, "lossy-down", "Ann", "video:cam")
	b, _ := joinClient(t, m, "lossy-down", "Bob")
	me := &webrtc.MediaEngine{}
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	var reg interceptor.Registry
	reg.Add(dropFactory{n: 5}) // first: the feedback never sees what it drops
	if err := webrtc.ConfigureTWCCSender(me, &reg); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.api = webrtc.NewAPI(webrtc.WithSettingEngine(clientSettings()), webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(&reg))
	b.mu.Unlock()
	a.peer.Start()
	b.peer.Start()
	a.mustPublish("video:cam")
	for _, n := range b.newConsumers(1) {
		b.waitMedia(n.str("consumerId"))
	}
	ann, bob := a.peer.ID(), b.peer.ID()
	notes := b.sink.waitFor(t, "Bob told his download is poor", func(notes []note, _ bool) bool {
		q := latestQuality(t, notes)
		return q[bob].Download == "poor" && q[ann].Upload != ""
	})
	q := latestQuality(t, notes)
	if l := q[bob].LossPercent; l < 15 || l > 30 || q[bob].Quality != "poor" {
		t.Errorf("Bob: %+v, want poor with about 20%% loss", q[bob])
	}
	if q[ann].Upload != "good" {
		t.Errorf("Ann: %+v, want a good upload", q[ann])
	}
}
