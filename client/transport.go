package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/internal/icecand"
)

// sendTransport is the publishing transport, nil before the first Publish.
func (c *Client) sendTransport() *sendTransport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.send
}

// requestTimeout bounds the requests the client makes on its own.
const requestTimeout = 10 * time.Second

// candidateSender trickles local candidates of one transport to the server.
func (c *Client) candidateSender(transport string) func(*webrtc.ICECandidate) {
	return func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return
		}
		init := cand.ToJSON()
		ctx, cancel := context.WithTimeout(c.ctx, requestTimeout)
		defer cancel()
		if err := c.Request(ctx, "iceCandidate", map[string]any{"transport": transport, "candidate": init}, nil); err != nil {
			c.log.Debug("send candidate", "err", err)
		}
	}
}

// sendTransport is the client's publishing peer connection.
type sendTransport struct {
	c    *Client
	pc   *webrtc.PeerConnection
	mu   sync.Mutex // one negotiation at a time
	cand icecand.Queue
	// restarting: the offer waiting for its answer restarts ICE.
	restarting bool // guarded by mu
	// lost: the requests of a publish whose answer was lost.
	lost []map[string]string // guarded by mu
	// unwanted: producers of failed publishes still to close.
	unwanted []string // guarded by mu
}

// LocalTrack is a track to publish under a source name.
type LocalTrack struct {
	Track  webrtc.TrackLocal
	Source string
	// OnKeyframeRequest, if set, is called when a receiver asks for a
	// keyframe (PLI or FIR).
	OnKeyframeRequest func()
	// Layers, when set, publish the source as simulcast: Track is then the
	// smallest layer and Layers the larger ones, smallest first. Every
	// layer's track, Track's too, needs its own RID
	// (webrtc.WithRTPStreamID); a receiver gets the largest layer its
	// link and wishes allow.
	Layers []SimulcastLayer
}

// SimulcastLayer is a larger layer of a simulcast LocalTrack.
type SimulcastLayer struct {
	Track             webrtc.TrackLocal
	OnKeyframeRequest func()
}

// Producer is a published source.
type Producer struct {
	ProducerID string `json:"producerId"`
	Mid        string `json:"mid"`
	Source     string `json:"source"`
	Kind       string `json:"kind"`
	Sender     *webrtc.RTPSender
}

// Publish adds tracks to the send transport and negotiates them. On an
// error nothing of them is published: a refusal (ServerError) negotiates
// nothing, and after an answer lost on the way (ctx ended first) the next
// negotiation closes whatever the server made of them.
func (c *Client) Publish(ctx context.Context, tracks ...LocalTrack) ([]Producer, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.send == nil {
		pc, err := c.api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
		if err != nil {
			c.mu.Unlock()
			return nil, err
		}
		c.send = &sendTransport{c: c, pc: pc}
		c.send.cand.Bind(pc)
		pc.OnICECandidate(c.candidateSender("send"))
		pc.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) { c.iceSend.changed(pc, st) })
	}
	send := c.send
	c.mu.Unlock()
	return send.publish(ctx, tracks)
}

func (s *sendTransport) publish(ctx context.Context, tracks []LocalTrack) ([]Producer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.settle(ctx); err != nil {
		return nil, err
	}
	senders := map[*webrtc.RTPTransceiver]LocalTrack{}
	mids := map[*webrtc.RTPTransceiver]*atomic.Pointer[string]{}
	for _, t := range tracks {
		if len(t.Layers) == 0 {
			tr, err := s.pc.AddTransceiverFromTrack(t.Track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
			if err != nil {
				return nil, err
			}
			senders[tr] = t
			go readSenderRTCP(tr.Sender(), "", t.OnKeyframeRequest)
			continue
		}
		mid := &atomic.Pointer[string]{}
		tr, err := s.pc.AddTransceiverFromTrack(&simulcastTrack{t.Track, mid}, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		senders[tr], mids[tr] = t, mid
		go readSenderRTCP(tr.Sender(), t.Track.RID(), t.OnKeyframeRequest)
		for _, l := range t.Layers {
			if err := tr.Sender().AddEncoding(&simulcastTrack{l.Track, mid}); err != nil {
				_ = s.pc.RemoveTrack(tr.Sender())
				return nil, fmt.Errorf("client: simulcast layer %q: %w", l.Track.RID(), err)
			}
			go readSenderRTCP(tr.Sender(), l.Track.RID(), l.OnKeyframeRequest)
		}
	}
	offer, err := s.pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	if err := s.pc.SetLocalDescription(offer); err != nil {
		return nil, err
	}
	for tr, mid := range mids {
		m := tr.Mid()
		mid.Store(&m) // before the answer binds the layers
	}
	var reqs []map[string]string
	for tr, t := range senders {
		reqs = append(reqs, map[string]string{"mid": tr.Mid(), "source": t.Source})
	}
	var res struct {
		Answer    string     `json:"answer"`
		Producers []Producer `json:"producers"`
	}
	if err := s.c.Request(ctx, "produce", map[string]any{"offer": s.pc.LocalDescription().SDP, "producers": reqs}, &res); err != nil {
		var se *ServerError
		if errors.As(err, &se) {
			s.refused(ctx, senders)
		} else {
			// Lost on the way (the server may have made the producers):
			// the offer waits, and the next negotiation settles it first,
			// closing what it made. These tracks are not sent.
			s.lost = reqs
			for tr := range senders {
				_ = s.pc.RemoveTrack(tr.Sender())
			}
		}
		return nil, err
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.Answer}); err != nil {
		return nil, fmt.Errorf("client: apply answer: %w", err)
	}
	s.cand.Flush()
	for i := range res.Producers {
		for tr := range senders {
			if tr.Mid() == res.Producers[i].Mid {
				res.Producers[i].Sender = tr.Sender()
			}
		}
	}
	return res.Producers, nil
}

// refused makes the transport usable again after the server refused a
// produce whole (it then negotiates nothing). Pion cannot roll a local
// offer back: a transport never negotiated is dropped (the next Publish
// makes another); one negotiated before completes the offer with no new
// producers (the server answers, and receives nothing on the refused
// m-lines), and the refused tracks are stopped.
func (s *sendTransport) refused(ctx context.Context, senders map[*webrtc.RTPTransceiver]LocalTrack) {
	for tr := range senders {
		_ = s.pc.RemoveTrack(tr.Sender())
	}
	if s.pc.RemoteDescription() == nil {
		s.c.mu.Lock()
		if s.c.send == s {
			s.c.send = nil
		}
		s.c.mu.Unlock()
		s.close()
		return
	}
	if err := s.settle(ctx); err != nil {
		s.c.log.Warn("send transport left waiting for an answer after a refused publish", "err", err)
		return
	}
	for tr := range senders {
		_ = tr.Stop()
	}
}

// settle completes an offer still waiting for its answer (its produce was
// lost on the way: a timeout, a stalled connection): Pion can neither make
// another offer meanwhile nor roll this one back. It is sent again with
// repeat (docs/protocol.md): the server makes nothing now and lists what
// the lost request made, which is closed, as Publish reported a failure.
// Producers it could not close yet are tried again on the next settle.
func (s *sendTransport) settle(ctx context.Context) error {
	if s.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		var res struct {
			Answer    string     `json:"answer"`
			Producers []Producer `json:"producers"`
		}
		reqs := s.lost
		if reqs == nil {
			reqs = []map[string]string{}
		}
		req := map[string]any{"offer": s.pc.LocalDescription().SDP, "producers": reqs, "repeat": true}
		if err := s.c.Request(ctx, "produce", req, &res); err != nil {
			return err
		}
		if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: res.Answer}); err != nil {
			return fmt.Errorf("client: apply answer: %w", err)
		}
		s.cand.Flush()
		s.restarting, s.lost = false, nil
		for _, p := range res.Producers {
			s.unwanted = append(s.unwanted, p.ProducerID)
		}
	}
	var left []string
	for _, id := range s.unwanted {
		err := s.c.Request(ctx, "closeProducer", map[string]string{"producerId": id}, nil)
		if err != nil && !errors.As(err, new(*ServerError)) { // unknownProducer: closed already
			s.c.log.Warn("close the producer of a failed publish", "producer", id, "err", err)
			left = append(left, id)
		}
	}
	s.unwanted = left
	return nil
}

func (s *sendTransport) addCandidate(c webrtc.ICECandidateInit) {
	if err := s.cand.Add(c); err != nil {
		s.c.log.Debug("remote candidate", "transport", "send", "err", err)
	}
}

func (s *sendTransport) close() { _ = s.pc.Close() }

// readSenderRTCP reads a sender's RTCP of one encoding (rid, or the only
// one when "") so that Pion's interceptors see it, and passes keyframe
// requests on.
func readSenderRTCP(sender *webrtc.RTPSender, rid string, onKeyframe func()) {
	for {
		var pkts []rtcp.Packet
		var err error
		if rid != "" {
			pkts, _, err = sender.ReadSimulcastRTCP(rid)
		} else {
			pkts, _, err = sender.ReadRTCP()
		}
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				if onKeyframe != nil {
					onKeyframe()
				}
			}
		}
	}
}

// RemoteTrack is a track received from another peer.
type RemoteTrack struct {
	ConsumerID string
	ProducerID string
	PeerID     string
	Source     string
	Track      *webrtc.TrackRemote
	Receiver   *webrtc.RTPReceiver

	onSR   atomic.Pointer[func(*rtcp.SenderReport, time.Time)]
	pc     *webrtc.PeerConnection
	direct *directRecv // the transport's direct path; nil: none
}

// Direct says whether the track's packets take the direct path (after
// Receive, once the first has).
func (t *RemoteTrack) Direct() bool {
	return t.direct != nil && t.direct.taking(uint32(t.Track.SSRC()))
}

// Receive calls fn with each of the track's RTP packets, decrypted, and
// the time it arrived, until the track ends, and returns what ended it
// (io.EOF once the server stopped it). p is fn's only during the call.
// fn is never called twice at once, but from different goroutines: once
// Receive is called, the track's packets take the direct path where it
// is there (file direct.go) and fn runs on the goroutine that reads the
// transport's socket, which it holds up: it should take its copy and
// return. Call Receive once; the track is not to be read in another way.
func (t *RemoteTrack) Receive(fn func(p []byte, arrival time.Time)) error {
	var mu sync.Mutex
	deliver := func(p []byte, at time.Time) {
		mu.Lock()
		fn(p, at)
		mu.Unlock()
	}
	if t.direct != nil {
		ssrc := uint32(t.Track.SSRC())
		t.direct.register(ssrc, t.nacks(), deliver)
		defer t.direct.unregister(ssrc)
	}
	return t.readPion(deliver)
}

// readPion hands fn each packet of the track that Pion's path reads (those
// before the direct path took the track, or all of them when there is
// none), until the track ends.
func (t *RemoteTrack) readPion(fn func(p []byte, arrival time.Time)) error {
	buf := make([]byte, receiveMTU)
	for {
		n, _, err := t.Track.Read(buf)
		if errors.Is(err, io.ErrShortBuffer) {
			continue
		}
		if err != nil {
			return err
		}
		fn(buf[:n], time.Now())
	}
}

// PacketInfo is what RemoteTrack.ReceiveInfo tells of a packet: its
// header's numbers, when it arrived, and whether it was authenticated.
type PacketInfo struct {
	Seq       uint16
	Timestamp uint32
	Marker    bool
	Arrival   time.Time
	Check     Check
}

// Check says what is known of a packet's origin.
type Check uint8

const (
	Authentic Check = iota // decrypted: the server sent it
	Unchecked              // taken by its header (Options.VerifyEvery)
	Forged                 // it failed authentication, and is dropped
	Replayed               // a copy of a packet taken before (SRTP's replay check), dropped
)

// ReceiveInfo is Receive for a reader of headers only: fn learns each of
// the track's packets' numbers, and of those that failed authentication,
// until the track ends. With Options.VerifyEvery most packets are not
// decrypted at all. fn runs with the transport's lock held: count and
// return (calling back into the client, RemoteTrack.Direct say, would
// deadlock).
func (t *RemoteTrack) ReceiveInfo(fn func(PacketInfo)) error {
	var h rtp.Header
	deliver := func(p []byte, at time.Time) {
		if _, err := h.Unmarshal(p); err == nil {
			fn(PacketInfo{Seq: h.SequenceNumber, Timestamp: h.Timestamp, Marker: h.Marker, Arrival: at})
		}
	}
	var mu sync.Mutex // Pion's path and the direct one, one at a time
	if t.direct != nil {
		ssrc := uint32(t.Track.SSRC())
		t.direct.registerInfo(ssrc, t.nacks(), func(i PacketInfo) {
			mu.Lock()
			fn(i)
			mu.Unlock()
		})
		defer t.direct.unregister(ssrc)
	}
	return t.readPion(func(p []byte, at time.Time) {
		mu.Lock()
		deliver(p, at)
		mu.Unlock()
	})
}

// nacks says whether NACKs were negotiated for the track.
func (t *RemoteTrack) nacks() bool {
	for _, fb := range t.Track.Codec().RTCPFeedback {
		if fb.Type == "nack" && fb.Parameter == "" {
			return true
		}
	}
	return false
}

// RequestKeyframe asks the sender for a keyframe (an RTCP PLI).
func (t *RemoteTrack) RequestKeyframe() error {
	return t.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(t.Track.SSRC())}})
}

// OnSenderReport sets the function called with each RTCP sender report of
// the track and when it arrived; the server's reports carry the
// publisher's clock, which lines up its audio and video.
func (t *RemoteTrack) OnSenderReport(fn func(sr *rtcp.SenderReport, arrival time.Time)) {
	t.onSR.Store(&fn)
}

type consumerInfo struct {
	ConsumerID string `json:"consumerId"`
	ProducerID string `json:"producerId"`
	PeerID     string `json:"peerId"`
	Source     string `json:"source"`
	Kind       string `json:"kind"`
	Mid        string `json:"mid"`
}

// recvTransport is the peer connection the server sends media on.
type recvTransport struct {
	c       *Client
	mu      sync.Mutex
	pc      *webrtc.PeerConnection
	direct  *directRecv // pc's direct path; nil: none
	byMid   map[string]consumerInfo
	onTrack func(*RemoteTrack)
	cand    icecand.Queue
	closed  bool // no new peer connection after close
}

func newRecvTransport(c *Client) *recvTransport {
	return &recvTransport{c: c, byMid: map[string]consumerInfo{}}
}

func (r *recvTransport) setOnTrack(fn func(*RemoteTrack)) {
	r.mu.Lock()
	r.onTrack = fn
	r.mu.Unlock()
}

func (r *recvTransport) newConsumer(data json.RawMessage) {
	var info consumerInfo
	if json.Unmarshal(data, &info) != nil {
		return
	}
	r.mu.Lock()
	r.byMid[info.Mid] = info
	r.mu.Unlock()
}

func (r *recvTransport) consumerClosed(data json.RawMessage) {
	var n struct {
		ConsumerID string `json:"consumerId"`
	}
	if json.Unmarshal(data, &n) != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for mid, info := range r.byMid {
		if info.ConsumerID == n.ConsumerID {
			delete(r.byMid, mid)
		}
	}
}

func (r *recvTransport) peerConnection() (*webrtc.PeerConnection, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	if r.pc != nil {
		return r.pc, nil
	}
	api := r.c.api
	var direct *directRecv
	if o := r.c.opts; !o.NoDirectReceive && o.UDPConn == nil && !o.TCPOnly && len(o.Interceptors) == 0 {
		direct = newDirectRecv(r.c.log, o.ReceiveEvery, o.VerifyEvery)
		var err error
		if api, err = newAPI(o, direct); err != nil {
			return nil, err
		}
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{BundlePolicy: webrtc.BundlePolicyMaxBundle})
	if err != nil {
		return nil, err
	}
	if direct != nil {
		direct.bind(pc)
	}
	r.direct = direct
	pc.OnICECandidate(r.c.candidateSender("recv"))
	pc.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) { r.c.iceRecv.changed(pc, st) })
	pc.OnTrack(func(t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) { r.track(pc, t, recv) })
	r.pc = pc
	r.cand.Bind(pc)
	return pc, nil
}

func (r *recvTransport) track(pc *webrtc.PeerConnection, t *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	r.mu.Lock()
	if r.pc != pc { // a transport reset since
		r.mu.Unlock()
		return
	}
	mid := ""
	for _, tr := range r.pc.GetTransceivers() {
		if tr.Receiver() == recv {
			mid = tr.Mid()
		}
	}
	info := r.byMid[mid]
	fn := r.onTrack
	direct := r.direct
	r.mu.Unlock()
	rt := &RemoteTrack{
		ConsumerID: info.ConsumerID, ProducerID: info.ProducerID, PeerID: info.PeerID, Source: info.Source,
		Track: t, Receiver: recv, pc: pc, direct: direct,
	}
	go rt.readRTCP()
	if fn != nil {
		fn(rt)
	}
}

// readRTCP reads the receiver's RTCP (Pion's interceptors need it read)
// and hands sender reports on.
func (t *RemoteTrack) readRTCP() {
	for {
		pkts, _, err := t.Receiver.ReadRTCP()
		if err != nil {
			return
		}
		now := time.Now()
		fn := t.onSR.Load()
		if fn == nil {
			continue
		}
		for _, p := range pkts {
			if sr, ok := p.(*rtcp.SenderReport); ok && sr.SSRC == uint32(t.Track.SSRC()) {
				(*fn)(sr, now)
			}
		}
	}
}

func (r *recvTransport) offer(data json.RawMessage) {
	var n struct {
		SDP     string `json:"sdp"`
		Version int    `json:"version"`
	}
	if json.Unmarshal(data, &n) != nil {
		return
	}
	if err := r.answer(n.SDP, n.Version); err != nil {
		r.c.log.Warn("answer server offer", "err", err)
	}
}

func (r *recvTransport) answer(sdp string, version int) error {
	pc, err := r.peerConnection()
	if err != nil {
		return err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		return err
	}
	r.cand.Flush()
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(ans); err != nil {
		return err
	}
	r.noteTWCC(pc)
	ctx, cancel := context.WithTimeout(r.c.ctx, requestTimeout)
	defer cancel()
	return r.c.Request(ctx, "answer", map[string]any{"sdp": pc.LocalDescription().SDP, "version": version}, nil)
}

func (r *recvTransport) addCandidate(c webrtc.ICECandidateInit) {
	if err := r.cand.Add(c); err != nil {
		r.c.log.Debug("remote candidate", "transport", "recv", "err", err)
	}
}

// noteTWCC gives the direct path the negotiated transport-wide sequence
// number extension.
func (r *recvTransport) noteTWCC(pc *webrtc.PeerConnection) {
	r.mu.Lock()
	direct := r.direct
	current := r.pc == pc
	r.mu.Unlock()
	if direct == nil || !current {
		return
	}
	id := 0
	for _, tr := range pc.GetTransceivers() {
		for _, e := range tr.Receiver().GetParameters().HeaderExtensions {
			if e.URI == sdp.TransportCCURI {
				id = e.ID
			}
		}
	}
	if id > 0 && id < 256 {
		direct.setTWCC(uint8(id))
	}
}

// reset closes the transport; the next offer makes a new one.
func (r *recvTransport) reset() {
	r.mu.Lock()
	pc := r.pc
	r.pc = nil
	if r.direct != nil {
		r.direct.close()
		r.direct = nil
	}
	r.byMid = map[string]consumerInfo{}
	r.cand.Reset()
	r.mu.Unlock()
	if pc != nil {
		_ = pc.Close()
	}
}

func (r *recvTransport) close() {
	r.mu.Lock()
	pc := r.pc
	r.closed = true
	if r.direct != nil {
		r.direct.close()
	}
	r.mu.Unlock()
	if pc != nil {
		_ = pc.Close()
	}
}
