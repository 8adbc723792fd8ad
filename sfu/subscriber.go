package sfu

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/internal/icecand"
)

// ErrStaleVersion is returned for an answer to an offer that is not the latest.
var ErrStaleVersion = errors.New("sfu: answer to a stale offer")

// SubscriberParams are the callbacks of a Subscriber.
type SubscriberParams struct {
	// Name names the subscriber in logs (its peer id).
	Name string
	// OnOffer delivers each offer; added lists the down tracks that
	// appear in it for the first time, with their m-line. It is called
	// with the subscriber locked: it must only queue messages.
	OnOffer        func(sdp string, version int, added []AddedTrack)
	OnICECandidate func(c *webrtc.ICECandidateInit)
	OnStateChange  func(webrtc.PeerConnectionState)
	// StartAtMax starts the bandwidth estimate at the most a transport
	// may send rather than at the configured initial rate, for a
	// subscriber next to the server (the recorder, which wants the best
	// layers from the start); congestion still brings it down.
	StartAtMax bool
}

// AddedTrack is a down track and the m-line it is sent on.
type AddedTrack struct {
	Down *DownTrack
	Mid  string
}

// Subscriber is the peer connection a client receives media on; the
// server makes the offers, one at a time.
type Subscriber struct {
	engine *Engine
	id     string
	pc     *webrtc.PeerConnection
	params SubscriberParams
	bw     *bandwidth
	direct *directPath // nil: every packet through Pion (NoBatching)
	ice    icecand.Queue
	kick   chan struct{}
	stop   chan struct{}
	// reportNow asks for sender reports now.
	reportNow chan struct{}

	mu          sync.Mutex
	version     int
	awaiting    bool // an offer is out and its answer has not come
	restartICE  bool
	dirty       bool // something changed since the last offer
	tracks      map[*DownTrack]*webrtc.RTPTransceiver
	unannounced []*DownTrack
	closed      bool

	// pionRTCP: RTCP comes through Pion, and each track's is read there
	// (readRTCP): the direct path is not taken, or has no route.
	pionRTCP   bool
	bySSRC     atomic.Pointer[map[uint32]*DownTrack] // trackOf's
	ssrcStale  atomic.Bool                           // bySSRC is to be made again
	rtcpIn     atomic.Pointer[directRTCP]            // the direct path's RTCP reader, once it is taken
	rtcpMu     sync.Mutex                            // guards the two below
	rtcpRoute  *udpRoute                             // the route claimed for rtcpIn
	rtcpClosed bool
}

// NewSubscriber makes the sending side of a client.
func (e *Engine) NewSubscriber(p SubscriberParams) (*Subscriber, error) {
	var direct *directPath
	if !e.params.NoBatching {
		direct = &directPath{}
	}
	pc, err := e.shard().subscriberAPI(direct).NewPeerConnection(webrtc.Configuration{
		BundlePolicy:  webrtc.BundlePolicyMaxBundle,
		RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
		// No cryptex: the direct path does not encrypt header extensions
		// (srtpout.go), and these carry nothing a subscriber's own.
		RTPHeaderEncryptionPolicy: webrtc.RTPHeaderEncryptionPolicyDisable,
	})
	if err != nil {
		return nil, fmt.Errorf("sfu: new subscriber: %w", err)
	}
	s := &Subscriber{
		engine: e, id: p.Name, pc: pc, params: p, direct: direct,
		kick:      make(chan struct{}, 1),
		reportNow: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		tracks:    map[*DownTrack]*webrtc.RTPTransceiver{},
		bw:        newBandwidth(e.params.InitialOutgoingBitrate, e.params.MaxOutgoingBitrate),
	}
	if p.StartAtMax {
		s.bw.est.Set(int(s.bw.est.max))
	}
	s.ice.Bind(pc)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) { p.OnICECandidate(candidateInit(c)) })
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateConnected {
			s.bw.ready.Store(true) // packets leave now: number them from here on
			s.startDirect()
			if !s.rtcpClaimed() {
				s.readPionRTCP() // no direct path: Pion has the RTCP
			}
			s.startTracks()
		}
		if p.OnStateChange != nil {
			p.OnStateChange(st)
		}
	})
	go s.run()
	return s, nil
}

// run does the subscriber's own work until it closes, on one goroutine
// (hundreds of subscribers a node: a goroutine each is memory): offers
// when something changed and no offer is out, sender reports each second
// and at once when a track starts or its publisher's first report comes,
// and the bandwidth's share among the tracks every allocEvery and
// whenever the estimate moves.
func (s *Subscriber) run() {
	reports := time.NewTicker(senderReportInterval)
	defer reports.Stop()
	alloc := time.NewTicker(allocEvery)
	defer alloc.Stop()
	var pkts []rtcp.Packet
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
			if err := s.offer(); err != nil {
				s.engine.log.Warn("subscriber offer failed", "err", err)
			}
		case <-s.reportNow:
			s.sendReports(time.Now(), &pkts)
		case now := <-reports.C:
			s.sendReports(now, &pkts)
		case now := <-alloc.C:
			s.allocate(now)
		case <-s.bw.kick:
			s.allocate(time.Now())
		}
	}
}

// startTracks asks for a keyframe for each video track, where its
// forwarder starts now that the transport is up (again, after an ICE
// restart: what was sent meanwhile is lost).
func (s *Subscriber) startTracks() {
	s.mu.Lock()
	downs := make([]*DownTrack, 0, len(s.tracks))
	for d := range s.tracks {
		downs = append(downs, d)
	}
	s.mu.Unlock()
	for _, d := range downs {
		d.requestKeyframe()
	}
}

// startDirect takes the direct path once DTLS is up: the keys from the
// handshake, the route from the selected ICE pair (and from each pair
// selected later). Without either, packets keep going through Pion.
func (s *Subscriber) startDirect() {
	p := s.direct
	if p == nil || p.srtp.Load() != nil {
		return
	}
	keys, err := p.keys.Keys(false)
	if err != nil {
		s.engine.log.Debug("no direct path", "subscriber", s.id, "err", err)
		return
	}
	if x, err := newDirectRTCP(s, keys); err == nil {
		s.rtcpIn.Store(x)
	} else {
		s.engine.log.Debug("no direct RTCP", "subscriber", s.id, "err", err)
	}
	ice := s.pc.SCTP().Transport().ICETransport()
	ice.OnSelectedCandidatePairChange(func(pair *webrtc.ICECandidatePair) {
		p.pairChanged(s.engine.routeOf(pair))
		s.claimRTCP()
	})
	pair, _ := ice.GetSelectedCandidatePair()
	r := s.engine.routeOf(pair)
	p.firstRoute(r)
	p.srtp.Store(keys)
	s.claimRTCP()
	s.engine.log.Debug("direct path", "subscriber", s.id, "profile", keys.Profile, "udp", r != nil)
}

// AddTrack starts sending d; the client learns of it in the next offer.
func (s *Subscriber) AddTrack(d *DownTrack) error {
	codec, ok := matchCodec(s.engine.codecs, d.up.codec)
	if !ok {
		return fmt.Errorf("sfu: codec %s not configured: %w", d.up.codec.MimeType, webrtc.ErrUnsupportedCodec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errDownTrackClosed
	}
	d.reportSoon = s.reportSoon
	d.onBound = func() { s.ssrcStale.Store(true) }
	d.bw = s.bw
	d.direct = s.direct
	sender, err := s.pc.AddTrack(d)
	if err != nil {
		return fmt.Errorf("sfu: add track: %w", err)
	}
	var tr *webrtc.RTPTransceiver
	for _, t := range s.pc.GetTransceivers() {
		if t.Sender() == sender {
			tr = t
		}
	}
	if tr == nil {
		return fmt.Errorf("sfu: add track: no transceiver")
	}
	// Offer RTX with the codec, unless an earlier answer showed the client
	// lacks it (Pion then refuses it in the preferences).
	withRTX := false
	if rtx, ok := rtxFor(s.engine.codecs, codec.PayloadType); ok {
		withRTX = tr.SetCodecPreferences([]webrtc.RTPCodecParameters{codec, rtx}) == nil
	}
	if !withRTX {
		err = tr.SetCodecPreferences([]webrtc.RTPCodecParameters{codec})
	}
	if err != nil {
		return fmt.Errorf("sfu: codec preferences: %w", err)
	}
	s.tracks[d] = tr
	s.ssrcStale.Store(true)
	s.unannounced = append(s.unannounced, d)
	s.dirty = true
	if s.direct == nil || s.pionRTCP {
		d.pionReading = true
		go d.readRTCP(sender)
	}
	s.signal()
	return nil
}

// RemoveTrack stops sending d; its m-line goes inactive in the next offer.
func (s *Subscriber) RemoveTrack(d *DownTrack) error {
	// Detach from the peer connection first, then stop forwarding.
	defer d.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	tr, ok := s.tracks[d]
	if !ok {
		return nil
	}
	delete(s.tracks, d)
	s.ssrcStale.Store(true)
	for i, x := range s.unannounced {
		if x == d {
			s.unannounced = append(s.unannounced[:i], s.unannounced[i+1:]...)
			break
		}
	}
	if s.closed {
		return nil
	}
	if err := s.pc.RemoveTrack(tr.Sender()); err != nil {
		return fmt.Errorf("sfu: remove track: %w", err)
	}
	s.dirty = true
	s.signal()
	return nil
}

// RestartICE makes an offer that restarts ICE and announces every track
// again. An offer still waiting for its answer is sent again first (same
// version, every track announced): after a dropped connection the client
// may never have got it, and Pion cannot roll it back. The restart follows
// its answer.
func (s *Subscriber) RestartICE() {
	s.mu.Lock()
	s.restartICE, s.dirty = true, true
	if s.awaiting && s.pc.PendingLocalDescription() != nil {
		added := make([]AddedTrack, 0, len(s.tracks))
		for _, d := range s.allTracksLocked() {
			// Tracks added after that offer have no m-line yet: the next
			// offer announces them.
			if mid := s.tracks[d].Mid(); mid != "" {
				added = append(added, AddedTrack{Down: d, Mid: mid})
			}
		}
		s.params.OnOffer(s.pc.PendingLocalDescription().SDP, s.version, added)
		s.mu.Unlock()
		return
	}
	s.unannounced = s.allTracksLocked()
	s.mu.Unlock()
	s.signal()
}

func (s *Subscriber) allTracksLocked() []*DownTrack {
	out := make([]*DownTrack, 0, len(s.tracks))
	for d := range s.tracks {
		out = append(out, d)
	}
	return out
}

// SetAnswer applies the client's answer to offer version.
func (s *Subscriber) SetAnswer(sdp string, version int) error {
	s.mu.Lock()
	if !s.awaiting || version != s.version {
		s.mu.Unlock()
		return ErrStaleVersion
	}
	offer := s.pc.PendingLocalDescription()
	s.mu.Unlock()
	d, err := checkDescription(sdp)
	if err == nil && offer != nil {
		err = checkAnswer(offer, d)
	}
	if err != nil {
		return err // the offer still waits for a good answer
	}
	if err := s.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		s.mu.Lock()
		if s.pc.SignalingState() == webrtc.SignalingStateStable {
			// Pion gave up the offer while refusing the answer: offer again.
			s.awaiting, s.dirty = false, true
			s.unannounced = s.allTracksLocked()
		}
		s.mu.Unlock()
		s.signal()
		return fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	s.ice.Flush()
	s.mu.Lock()
	s.awaiting = false
	s.mu.Unlock()
	s.signal() // changes made meanwhile
	return nil
}

// AddICECandidate adds a remote candidate.
func (s *Subscriber) AddICECandidate(c webrtc.ICECandidateInit) error { return s.ice.Add(c) }

// Close ends the peer connection and detaches every down track.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	tracks := s.tracks
	s.tracks = nil
	s.mu.Unlock()
	close(s.stop)
	s.rtcpMu.Lock()
	s.rtcpClosed = true
	s.rtcpMu.Unlock()
	s.claimRTCP() // gives the route back
	s.ssrcStale.Store(true)
	for d := range tracks {
		d.close()
	}
	return s.pc.Close()
}

func (s *Subscriber) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *Subscriber) offer() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.awaiting {
		return nil
	}
	if !s.dirty {
		return nil
	}
	offer, err := s.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: s.restartICE})
	if err != nil {
		return err
	}
	if err := s.pc.SetLocalDescription(offer); err != nil {
		return err
	}
	s.restartICE, s.dirty = false, false
	s.version++
	s.awaiting = true
	added := make([]AddedTrack, 0, len(s.unannounced))
	for _, d := range s.unannounced {
		added = append(added, AddedTrack{Down: d, Mid: s.tracks[d].Mid()})
	}
	s.unannounced = nil
	// Called under the lock so offers reach the client in order; the
	// callback only queues messages.
	s.params.OnOffer(s.pc.LocalDescription().SDP, s.version, added)
	return nil
}
