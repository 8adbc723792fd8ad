package room

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/sfu"
)

// Tests of this package bind media ports in this range; an engine skips
// the ports that are busy.
const testMinPort, testMaxPort = 28000, 28999

// newTestEngine is a real engine on 127.0.0.1 with VP8 and Opus.
func newTestEngine(t testing.TB) *sfu.Engine {
	t.Helper()
	e, err := sfu.NewEngine(sfu.EngineParams{
		RTC: config.RTC{
			MinPort: testMinPort, MaxPort: testMaxPort,
			Listen: []config.Listen{{IP: "127.0.0.1", AnnouncedIP: "127.0.0.1"}},
		},
		Codecs: []config.Codec{
			{Kind: "audio", MimeType: "audio/opus", ClockRate: 48000, Channels: 2},
			{Kind: "video", MimeType: "video/VP8", ClockRate: 90000, RTCPFeedback: []config.Feedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}},
		},
	})
	if err != nil {
		t.Fatalf("sfu.NewEngine: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// newTestManager is a manager on its own engine; the test's cleanup
// drains it before the engine closes.
func newTestManager(t testing.TB, mode config.ServeMode, grace time.Duration) *Manager {
	t.Helper()
	m := NewManager(Params{Engine: newTestEngine(t), ServeMode: mode, EmptyGrace: grace})
	t.Cleanup(func() { m.Drain("serverShutdown") })
	return m
}

// clientAPI is a plain Pion API (default codecs) that only uses loopback.
func clientAPI() *webrtc.API { return webrtc.NewAPI(webrtc.WithSettingEngine(clientSettings())) }

// clientSettings use only loopback, quietly.
func clientSettings() webrtc.SettingEngine {
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	quiet := logging.NewDefaultLoggerFactory()
	quiet.DefaultLogLevel = logging.LogLevelDisabled
	se.LoggerFactory = quiet
	return se
}

// testClient plays the part of a browser: it joins through the Manager,
// publishes with a Pion peer connection via Peer.Produce and answers the
// server's offers via Peer.Answer, trickling candidates both ways. Its
// dispatcher reads the sink in order, as a client reads its WebSocket.
type testClient struct {
	t    testing.TB
	name string
	sink *recSink
	peer *Peer
	api  *webrtc.API

	sendIn, recvIn candidateQueue // server candidates held until the remote description is set

	mu        sync.Mutex
	send      *webrtc.PeerConnection
	sendReady bool                      // the send transport has its answer
	sendOut   []webrtc.ICECandidateInit // our send candidates held until then
	recv      *webrtc.PeerConnection
	received  map[string]*receivedTrack // by track id, which is the consumer id
	changed   chan struct{}             // closed and replaced when received changes
	holding   bool                      // offers are held, not answered
	held      []heldOffer

	stop chan struct{}
	wg   sync.WaitGroup
}

type heldOffer struct {
	sdp     string
	version int
}

// receivedTrack is a track arriving on the recv transport.
type receivedTrack struct {
	mid, kind string
	packets   int
}

// joinClient makes a client and joins it to room id. Unlike the signaling
// layer it does not call Start: tests do when they need it.
func joinClient(t testing.TB, m *Manager, id, name string, sources ...string) (*testClient, []PeerInfo) {
	t.Helper()
	return joinClientAs(t, m, id, name, "", sources...)
}

// joinClientAs joins a client with a role (as its ticket would give).
func joinClientAs(t testing.TB, m *Manager, id, name string, role auth.Role, sources ...string) (*testClient, []PeerInfo) {
	t.Helper()
	c := &testClient{
		t: t, name: name, sink: newRecSink(), api: clientAPI(),
		received: map[string]*receivedTrack{}, changed: make(chan struct{}), stop: make(chan struct{}),
	}
	peer, others, err := m.Join(id, PeerParams{DisplayName: name, Role: role, Sources: sources, Sink: c.sink})
	if err != nil {
		t.Fatalf("Join(%q, %s): %v", id, name, err)
	}
	c.peer = peer
	c.wg.Add(1)
	go c.dispatch()
	t.Cleanup(c.close)
	return c, others
}

func (c *testClient) close() {
	close(c.stop)
	c.wg.Wait()
	c.sink.mu.Lock()
	if errs := c.sink.marshalErrs; len(errs) > 0 {
		c.t.Errorf("%s: notifications that do not marshal to JSON: %v", c.name, errs)
	}
	c.sink.mu.Unlock()
	c.mu.Lock()
	send, recv := c.send, c.recv
	c.mu.Unlock()
	if send != nil {
		_ = send.Close()
	}
	if recv != nil {
		_ = recv.Close()
	}
}

// dispatch handles the transport notifications in the order they came.
func (c *testClient) dispatch() {
	defer c.wg.Done()
	next := 0
	for {
		notes, _, changed := c.sink.snapshot()
		for ; next < len(notes); next++ {
			c.handle(notes[next])
		}
		select {
		case <-c.stop:
			return
		case <-changed:
		}
	}
}

func (c *testClient) handle(n note) {
	switch n.Method {
	case "iceCandidate":
		var d struct {
			Transport string                   `json:"transport"`
			Candidate *webrtc.ICECandidateInit `json:"candidate"`
		}
		if err := json.Unmarshal([]byte(n.Raw), &d); err != nil {
			c.t.Errorf("%s: iceCandidate %s: %v", c.name, n.Raw, err)
			return
		}
		if d.Candidate == nil {
			return
		}
		switch d.Transport {
		case "send":
			c.sendIn.add(*d.Candidate)
		case "recv":
			c.recvIn.add(*d.Candidate)
		default:
			c.t.Errorf("%s: iceCandidate for transport %q", c.name, d.Transport)
		}
	case "offer":
		var d struct {
			SDP     string `json:"sdp"`
			Version int    `json:"version"`
		}
		if err := json.Unmarshal([]byte(n.Raw), &d); err != nil {
			c.t.Errorf("%s: offer %s: %v", c.name, n.Raw, err)
			return
		}
		c.mu.Lock()
		if c.holding {
			c.held = append(c.held, heldOffer{d.SDP, d.Version})
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if err := c.answer(d.SDP, d.Version); err != nil && !c.gone() {
			c.t.Errorf("%s: answer to offer %d: %v", c.name, d.Version, err)
		}
	}
}

// holdOffers makes the client keep the next offers unanswered, as a slow
// or disconnected client would.
func (c *testClient) holdOffers() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holding = true
}

// heldOffers is the number of offers held.
func (c *testClient) heldOffers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.held)
}

// takeHeldOffer stops holding offers and returns the one held.
func (c *testClient) takeHeldOffer() heldOffer {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.held) != 1 {
		c.t.Fatalf("%s: %d offers held, want 1", c.name, len(c.held))
	}
	o := c.held[0]
	c.holding, c.held = false, nil
	return o
}

// gone reports whether the peer left its room, after which the server
// closes its transports and refuses answers.
func (c *testClient) gone() bool {
	r := c.peer.room
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.peer.left
}

// answer answers an offer of the recv transport, making the transport on
// the first offer.
func (c *testClient) answer(sdp string, version int) error {
	return c.answerMangled(sdp, version, nil)
}

// answerMangled answers an offer with the answer passed through mangle.
func (c *testClient) answerMangled(sdp string, version int, mangle func(string) string) error {
	pc, err := c.recvPC()
	if err != nil {
		return err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return err
	}
	c.recvIn.ready(pc)
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return err
	}
	if mangle != nil {
		ans.SDP = mangle(ans.SDP)
	}
	return c.peer.Answer(ans.SDP, version)
}

func (c *testClient) recvPC() (*webrtc.PeerConnection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.recv != nil {
		return c.recv, nil
	}
	pc, err := c.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			_ = c.peer.AddICECandidate("recv", cand.ToJSON())
		}
	})
	pc.OnTrack(func(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
		mid := ""
		for _, tr := range pc.GetTransceivers() {
			if tr.Receiver() == recv {
				mid = tr.Mid()
			}
		}
		go c.readTrack(track, mid)
	})
	c.recv = pc
	return pc, nil
}

// readTrack counts the packets of a received track.
func (c *testClient) readTrack(track *webrtc.TrackRemote, mid string) {
	rt := &receivedTrack{mid: mid, kind: track.Kind().String()}
	c.mu.Lock()
	c.received[track.ID()] = rt
	c.mu.Unlock()
	for {
		if _, _, err := track.ReadRTP(); err != nil {
			return
		}
		c.mu.Lock()
		rt.packets++
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

// waitMedia waits until the recv transport got packets of consumer id and
// returns the mid and kind it arrived on.
func (c *testClient) waitMedia(consumerID string) (mid, kind string) {
	c.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		rt, changed := c.received[consumerID], c.changed
		got := rt != nil && rt.packets > 0
		if got {
			mid, kind = rt.mid, rt.kind
		}
		c.mu.Unlock()
		if got {
			return mid, kind
		}
		select {
		case <-changed:
		case <-timer.C:
			c.t.Fatalf("%s: no media of consumer %s after %v; notifications:\n%s", c.name, consumerID, waitTimeout, dump(signalingNotes(c.sink.all())))
		}
	}
}

// packets is how many packets of consumer id the recv transport got.
func (c *testClient) packets(consumerID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rt := c.received[consumerID]; rt != nil {
		return rt.packets
	}
	return 0
}

// waitPackets waits until the recv transport got n packets of consumer id.
func (c *testClient) waitPackets(consumerID string, n int) {
	c.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		got, changed := 0, c.changed
		if rt := c.received[consumerID]; rt != nil {
			got = rt.packets
		}
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			c.t.Fatalf("%s: %d packets of consumer %s after %v, want %d", c.name, got, consumerID, waitTimeout, n)
		}
	}
}

func (c *testClient) sendPC() (*webrtc.PeerConnection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.send != nil {
		return c.send, nil
	}
	pc, err := c.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		c.mu.Lock()
		if !c.sendReady {
			// Like a browser's, these requests follow the produce request.
			c.sendOut = append(c.sendOut, cand.ToJSON())
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		_ = c.peer.AddICECandidate("send", cand.ToJSON())
	})
	c.send = pc
	return pc, nil
}

// publish adds a sendonly transceiver per source, produces them in one
// offer and starts writing samples. It returns Produce's error as is.
func (c *testClient) publish(sources ...string) ([]ProducerInfo, error) {
	c.t.Helper()
	offer, reqs, tracks := c.prepareOffer(sources...)
	answer, infos, err := c.peer.Produce(offer, reqs)
	if err != nil {
		return nil, err
	}
	c.applyAnswer(answer, tracks)
	return infos, nil
}

// prepareOffer adds a sendonly transceiver per source to the send
// transport and makes its next offer.
func (c *testClient) prepareOffer(sources ...string) (string, []ProduceRequest, []*webrtc.TrackLocalStaticSample) {
	c.t.Helper()
	pc, err := c.sendPC()
	if err != nil {
		c.t.Fatal(err)
	}
	var tracks []*webrtc.TrackLocalStaticSample
	var trs []*webrtc.RTPTransceiver
	for _, src := range sources {
		track := newSampleTrack(c.t, src, c.name)
		tr, err := pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			c.t.Fatal(err)
		}
		tracks, trs = append(tracks, track), append(trs, tr)
	}
	offer, err := pc.CreateOffer(nil)
	if err == nil {
		err = pc.SetLocalDescription(offer)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	reqs := make([]ProduceRequest, len(sources))
	for i, src := range sources {
		reqs[i] = ProduceRequest{Mid: trs[i].Mid(), Source: src}
	}
	return offer.SDP, reqs, tracks
}

// applyAnswer applies Produce's answer, lets the candidates flow and
// starts the tracks.
func (c *testClient) applyAnswer(answer string, tracks []*webrtc.TrackLocalStaticSample) {
	c.t.Helper()
	c.mu.Lock()
	pc := c.send
	c.mu.Unlock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		c.t.Fatalf("%s: applying the produce answer: %v", c.name, err)
	}
	c.sendIn.ready(pc)
	c.mu.Lock()
	c.sendReady = true
	out := c.sendOut
	c.sendOut = nil
	c.mu.Unlock()
	for _, cand := range out {
		if err := c.peer.AddICECandidate("send", cand); err != nil {
			c.t.Errorf("%s: AddICECandidate(send): %v", c.name, err)
		}
	}
	for _, track := range tracks {
		c.wg.Add(1)
		go c.writeSamples(track)
	}
}

// mustPublish publishes and checks the producers returned.
func (c *testClient) mustPublish(sources ...string) map[string]ProducerInfo {
	c.t.Helper()
	infos, err := c.publish(sources...)
	if err != nil {
		c.t.Fatalf("%s: Produce(%v): %v", c.name, sources, err)
	}
	if len(infos) != len(sources) {
		c.t.Fatalf("%s: Produce(%v) returned %d producers: %+v", c.name, sources, len(infos), infos)
	}
	bySource := map[string]ProducerInfo{}
	for _, info := range infos {
		bySource[info.Source] = info
	}
	for _, src := range sources {
		info, ok := bySource[src]
		kind, _, _ := strings.Cut(src, ":")
		if !ok || info.ProducerID == "" || info.Kind != kind || info.Paused {
			c.t.Fatalf("%s: Produce(%v) returned %+v: want a live %s producer of %s", c.name, sources, infos, kind, src)
		}
	}
	return bySource
}

func newSampleTrack(t testing.TB, source, stream string) *webrtc.TrackLocalStaticSample {
	t.Helper()
	mime := webrtc.MimeTypeVP8
	if strings.HasPrefix(source, "audio:") {
		mime = webrtc.MimeTypeOpus
	}
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: mime}, source, stream)
	if err != nil {
		t.Fatal(err)
	}
	return track
}

// writeSamples sends samples until the client closes: VP8 keyframes at
// 30 fps, or 20 ms Opus frames. Writes before the track is bound are
// dropped by Pion.
func (c *testClient) writeSamples(track *webrtc.TrackLocalStaticSample) {
	defer c.wg.Done()
	frame, data := 33*time.Millisecond, make([]byte, 200)
	data[0] = 0x10 // VP8 frame tag of a keyframe (RFC 6386 section 9.1)
	if track.Kind() == webrtc.RTPCodecTypeAudio {
		frame, data = 20*time.Millisecond, make([]byte, 40)
		data[0] = 0x78 // Opus TOC: 20 ms frame
	}
	tick := time.NewTicker(frame)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		_ = track.WriteSample(media.Sample{Data: data, Duration: frame})
	}
}

// candidateQueue holds remote candidates until the remote description is set.
type candidateQueue struct {
	mu      sync.Mutex
	pc      *webrtc.PeerConnection
	pending []webrtc.ICECandidateInit
}

func (q *candidateQueue) add(c webrtc.ICECandidateInit) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pc == nil {
		q.pending = append(q.pending, c)
		return
	}
	_ = q.pc.AddICECandidate(c)
}

func (q *candidateQueue) ready(pc *webrtc.PeerConnection) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pc != nil {
		return
	}
	q.pc = pc
	for _, c := range q.pending {
		_ = pc.AddICECandidate(c)
	}
	q.pending = nil
}

// newConsumers waits for n newConsumer notifications and returns them by
// producer id, checking that each names a mid and comes before the first
// offer that carries its track, on that mid.
func (c *testClient) newConsumers(n int) map[string]note {
	c.t.Helper()
	notes := c.sink.waitFor(c.t, fmt.Sprintf("%s: %d newConsumer", c.name, n), func(notes []note, _ bool) bool {
		return count(notes, "newConsumer", nil) >= n
	})
	out := map[string]note{}
	for i, nc := range notes {
		if nc.Method != "newConsumer" {
			continue
		}
		mid, id := nc.str("mid"), nc.str("consumerId")
		if mid == "" || id == "" {
			c.t.Fatalf("%s: newConsumer without mid or consumerId: %s", c.name, nc.Raw)
		}
		if indexOf(notes, 0, "newConsumer", map[string]string{"consumerId": id}) < i {
			continue // announced again after restartIce
		}
		if first, offerMid := firstOfferWithTrack(notes, id); first >= 0 && (first < i || offerMid != mid) {
			c.t.Errorf("%s: newConsumer #%d puts %s on mid %s; offer #%d carries it on mid %s:\n%s", c.name, i, id, mid, first, offerMid, dump(notes))
		}
		out[nc.str("producerId")] = nc
	}
	return out
}

// firstOfferWithTrack is the index of the first offer that sends the
// track of consumer id (the down track's id is the consumer's) and its
// mid, or -1.
func firstOfferWithTrack(notes []note, id string) (int, string) {
	for i, n := range notes {
		if n.Method != "offer" {
			continue
		}
		for _, sec := range strings.Split(n.str("sdp"), "\r\nm=")[1:] {
			if !strings.Contains(sec, " "+id+"\r\n") || (!strings.Contains(sec, "\r\na=sendonly") && !strings.Contains(sec, "\r\na=sendrecv")) {
				continue
			}
			for _, l := range strings.Split(sec, "\r\n") {
				if mid, ok := strings.CutPrefix(l, "a=mid:"); ok {
					return i, mid
				}
			}
		}
	}
	return -1, ""
}

// waitCounts polls the manager's counts until they are want.
func waitCounts(t testing.TB, m *Manager, want [4]int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		var got [4]int
		got[0], got[1], got[2], got[3] = m.Counts()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Counts() = %v, want %v (rooms, peers, producers, consumers)", got, want)
		}
		<-tick.C
	}
}
