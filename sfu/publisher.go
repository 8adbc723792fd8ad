package sfu

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/internal/icecand"
)

// ErrBadSDP wraps every failure to parse or apply a session description.
var ErrBadSDP = errors.New("sfu: bad SDP")

var publisherConfig = webrtc.Configuration{
	BundlePolicy:  webrtc.BundlePolicyMaxBundle,
	RTCPMuxPolicy: webrtc.RTCPMuxPolicyRequire,
	// No cryptex: the direct path reads header extensions in the clear.
	RTPHeaderEncryptionPolicy: webrtc.RTPHeaderEncryptionPolicyDisable,
}

// PublisherParams are the callbacks of a Publisher. They are called from
// Pion's goroutines and must not block.
type PublisherParams struct {
	// TrackID names the track arriving on mid; false refuses it.
	TrackID func(mid string) (string, bool)
	// OnTrack is called when a track starts; the track runs until its
	// Done channel closes.
	OnTrack        func(mid string, t *UpTrack)
	OnICECandidate func(c *webrtc.ICECandidateInit) // nil when gathering is complete
	OnStateChange  func(webrtc.PeerConnectionState)
}

// MediaSection is one m-line of a negotiated description.
type MediaSection struct {
	Mid  string
	Kind webrtc.RTPCodecType
	// RIDs are the simulcast layers it sends, smallest first (none: one stream).
	RIDs []string
}

// Publisher is the peer connection a client sends its media on; the
// client makes the offers.
type Publisher struct {
	engine *Engine
	shard  *apiShard
	pc     *webrtc.PeerConnection
	in     *pubIn
	// taken is the last offer the connection took (as given to Pion), for
	// Negotiate's dry runs, and takenMids its m-lines' mids; Negotiate's own.
	taken     string
	takenMids []string
	params    PublisherParams
	ice       icecand.Queue
	loss      recentLoss // of the receiver reports (feedbackLoop's)

	mu     sync.Mutex
	tracks map[string]*UpTrack // by mid: the layers of one m-line join one track
	rids   map[string][]string // by mid: the simulcast layers the last offer declared
	// SSRC-based simulcast: the SSRCs named (to forget on Close), and the
	// mids whose offers were (true: the rid extensions were added too).
	simSSRCs []uint32
	simMids  map[string]bool
}

// NewPublisher makes the receiving side of a client.
func (e *Engine) NewPublisher(p PublisherParams) (*Publisher, error) {
	var direct *directPath
	if !e.params.NoBatching {
		direct = &directPath{}
	}
	in := newPubIn(direct)
	sh := e.shard()
	pc, err := sh.publisherAPI(in, &e.simLayers).NewPeerConnection(publisherConfig)
	if err != nil {
		return nil, fmt.Errorf("sfu: new publisher: %w", err)
	}
	pub := &Publisher{
		engine: e, shard: sh, pc: pc, in: in, params: p,
		tracks: map[string]*UpTrack{}, rids: map[string][]string{},
	}
	in.p = pub
	pub.ice.Bind(pc)
	pc.OnICECandidate(func(c *webrtc.ICECandidate) { p.OnICECandidate(candidateInit(c)) })
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			in.start()
		}
		if p.OnStateChange != nil {
			p.OnStateChange(s)
		}
	})
	pc.OnTrack(pub.onTrack)
	e.addPublisher(pub)
	return pub, nil
}

func (p *Publisher) onTrack(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	mid := ""
	for _, t := range p.pc.GetTransceivers() {
		if t.Receiver() == recv {
			mid = t.Mid()
		}
	}
	id, ok := p.params.TrackID(mid)
	if !ok {
		// Stop it: unread, Pion would buffer its packets.
		p.engine.log.Info("track on an undeclared m-line stopped", "mid", mid, "kind", track.Kind())
		_ = recv.Stop()
		return
	}
	rid := track.RID()
	p.mu.Lock()
	up := p.tracks[mid]
	fresh := up == nil || up.id != id
	if fresh {
		up = makeUpTrack(id, p.engine, track.Codec(), trackExt(recv), p.rids[mid], p.pc.WriteRTCP)
		p.tracks[mid] = up
	}
	p.mu.Unlock()
	index := layerIndex(up.rids, rid)
	l, ok := up.addLayer(index, rid, uint32(track.SSRC()), track)
	if !ok {
		p.engine.log.Info("simulcast layer not declared or arriving twice: ignored", "mid", mid, "rid", rid)
		return
	}
	p.in.register(l)
	l.took = p.in.took
	go func() {
		l.run()
		p.in.unregister(l)
	}()
	// The sender reports that come through Pion (the direct path reads
	// them too): they give subscribers the publisher's clock.
	go func() {
		for {
			var pkts []rtcp.Packet
			var err error
			if rid != "" {
				pkts, _, err = recv.ReadSimulcastRTCP(rid)
			} else {
				pkts, _, err = recv.ReadRTCP()
			}
			if err != nil {
				return
			}
			now := time.Now()
			for _, pkt := range pkts {
				if sr, ok := pkt.(*rtcp.SenderReport); ok {
					up.noteSenderReport(sr, now)
				}
			}
		}
	}()
	if fresh {
		p.params.OnTrack(mid, up)
		go up.watch()
	}
	// A new layer's first packet tells the down tracks (upLayer.handle).
}

// trackExt is the negotiated id of the extension an up track reads (the
// audio level of audio, the dependency descriptor of video), 0 = none.
func trackExt(recv *webrtc.RTPReceiver) uint8 {
	for _, ext := range recv.GetParameters().HeaderExtensions {
		if ext.URI == audioLevelURI || ext.URI == dependencyDescriptorURI {
			return uint8(ext.ID)
		}
	}
	return 0
}

// layerIndex is the layer of rid among the declared ones (smallest
// first); a stream without rid is layer 0; -1 for an undeclared rid.
func layerIndex(rids []string, rid string) int8 {
	if rid == "" {
		return 0
	}
	for i, r := range rids {
		if r == rid && i < MaxLayers {
			return int8(i)
		}
	}
	return -1
}

// Negotiate applies the client's offer and returns the answer and the
// m-lines the client sends on.
func (p *Publisher) Negotiate(offer string) (string, []MediaSection, error) {
	d, err := checkDescription(offer)
	if err != nil {
		return "", nil, err
	}
	named, mids, err := ridsFromSIM(d)
	if err != nil {
		return "", nil, err
	}
	if len(mids) > 0 {
		text, err := d.Marshal()
		if err != nil {
			return "", nil, fmt.Errorf("%w: %w", ErrBadSDP, err)
		}
		offer = string(text)
	}
	if err := p.sameMids(d); err != nil {
		return "", nil, err
	}
	if err := p.tryOffer(offer); err != nil {
		return "", nil, err
	}
	p.simulcastBySSRC(named, mids)
	p.noteSimulcast(d)
	if err := answerOffer(p.pc, offer); err != nil {
		return "", nil, err
	}
	p.taken, p.takenMids = offer, midsOf(d)
	p.ice.Flush()
	var sending []MediaSection
	for _, t := range p.pc.GetTransceivers() {
		if t.Mid() != "" && t.Direction() == webrtc.RTPTransceiverDirectionRecvonly {
			sending = append(sending, MediaSection{Mid: t.Mid(), Kind: t.Kind()})
		}
	}
	out := p.pc.LocalDescription().SDP
	if len(p.simMids) > 0 {
		if out, err = dropRIDs(out, p.simMids); err != nil {
			return "", nil, fmt.Errorf("sfu: answer: %w", err)
		}
	}
	return out, sending, nil
}

// simulcastBySSRC keeps an offer's SSRC-based simulcast layers, which
// ridsFromSIM named (see simssrc.go).
func (p *Publisher) simulcastBySSRC(named map[uint32]ssrcLayer, mids map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.simMids = mids // an offer has every m-line
	for ssrc, layer := range named {
		if _, known := p.engine.simLayers.m.Swap(ssrc, layer); !known {
			p.simSSRCs = append(p.simSSRCs, ssrc) // once, however often it is offered again
		}
	}
}

// sameMids checks that an offer keeps the m-lines of the last one taken,
// under their mids (RFC 8829 section 5.2.2: m-lines are only added). Pion
// would match an m-line whose mid changed with another transceiver, and
// answer for a mid the offer does not have.
func (p *Publisher) sameMids(d *sdp.SessionDescription) error {
	got := midsOf(d)
	if len(got) < len(p.takenMids) {
		return fmt.Errorf("%w: %d m-lines, %d before", ErrBadSDP, len(got), len(p.takenMids))
	}
	for i, mid := range p.takenMids {
		if got[i] != mid {
			return fmt.Errorf("%w: m-line %d has mid %q, %q before", ErrBadSDP, i, got[i], mid)
		}
	}
	return nil
}

// midsOf lists the mids of d's m-lines.
func midsOf(d *sdp.SessionDescription) []string {
	out := make([]string, len(d.MediaDescriptions))
	for i, m := range d.MediaDescriptions {
		out[i], _ = m.Attribute(sdp.AttrKeyMID)
	}
	return out
}

// tryOffer applies offer, after the last one taken, to a scratch peer
// connection first. Pion takes an offer before it has checked it all,
// and cannot roll it back: an offer it fails to apply or answer leaves the
// connection in have-remote-offer, refusing every offer after it. The
// publisher's own connection gets only offers that went through, and
// that go through again: Pion checks some lines (the header extensions)
// only in a renegotiation, and a client sends its offer again when the
// answer was lost (or renegotiates with the same m-lines).
func (p *Publisher) tryOffer(offer string) error {
	pc, err := p.shard.publisherAPI(newPubIn(nil), &ssrcLayers{}).NewPeerConnection(publisherConfig)
	if err != nil {
		return fmt.Errorf("sfu: scratch peer connection: %w", err)
	}
	defer pc.Close()
	if p.taken != "" {
		if err := answerOffer(pc, p.taken); err != nil {
			return fmt.Errorf("sfu: the last offer taken fails again: %w", err)
		}
	}
	if err := answerOffer(pc, offer); err != nil {
		return err
	}
	return answerOffer(pc, offer)
}

// answerOffer applies offer to pc and answers it.
func answerOffer(pc *webrtc.PeerConnection, offer string) error {
	err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	return nil
}

// noteSimulcast keeps the simulcast layers each m-line of an offer sends
// (a=simulcast:send, smallest first).
func (p *Publisher) noteSimulcast(d *sdp.SessionDescription) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range d.MediaDescriptions {
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		if mid == "" {
			continue
		}
		if v, ok := m.Attribute("simulcast"); ok {
			p.rids[mid] = simulcastSendRIDs(v)
		} else {
			delete(p.rids, mid)
		}
	}
}

// simulcastSendRIDs reads the send streams of an a=simulcast value
// (RFC 8853): "send l;m;h", the first alternative of each, "~" (paused)
// dropped.
func simulcastSendRIDs(v string) []string {
	fields := strings.Fields(v)
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] != "send" {
			continue
		}
		var rids []string
		for _, stream := range strings.Split(fields[i+1], ";") {
			first, _, _ := strings.Cut(stream, ",")
			if first = strings.TrimPrefix(first, "~"); first != "" {
				rids = append(rids, first)
			}
		}
		return rids
	}
	return nil
}

// AddICECandidate adds a remote candidate, holding it until the remote
// description is known.
func (p *Publisher) AddICECandidate(c webrtc.ICECandidateInit) error { return p.ice.Add(c) }

// Close ends the peer connection and its tracks.
func (p *Publisher) Close() error {
	p.engine.removePublisher(p)
	p.in.close()
	err := p.pc.Close()
	p.mu.Lock()
	for _, ssrc := range p.simSSRCs {
		p.engine.simLayers.m.Delete(ssrc)
	}
	p.simSSRCs = nil
	p.mu.Unlock()
	return err
}

func candidateInit(c *webrtc.ICECandidate) *webrtc.ICECandidateInit {
	if c == nil {
		return nil
	}
	init := c.ToJSON()
	return &init
}

// OfferedSections lists the m-lines of an offer that send media to us,
// so that a caller can check them before applying the offer.
func OfferedSections(offer string) ([]MediaSection, error) {
	d, err := checkDescription(offer)
	if err != nil {
		return nil, err
	}
	var out []MediaSection
	for _, m := range d.MediaDescriptions {
		mid, _ := m.Attribute(sdp.AttrKeyMID)
		kind := webrtc.NewRTPCodecType(m.MediaName.Media)
		if kind == 0 || mid == "" || m.MediaName.Port.Value == 0 {
			continue
		}
		if dir := direction(d, m); dir == sdp.AttrKeySendRecv || dir == sdp.AttrKeySendOnly {
			var rids []string
			if v, ok := m.Attribute("simulcast"); ok {
				rids = simulcastSendRIDs(v)
			}
			out = append(out, MediaSection{Mid: mid, Kind: kind, RIDs: rids})
		}
	}
	return out, nil
}

// direction is the direction attribute of m-line m of d: its own, else
// the session's, else sendrecv (RFC 8866 section 6.7), as Pion reads it.
func direction(d *sdp.SessionDescription, m *sdp.MediaDescription) string {
	for _, attrs := range [][]sdp.Attribute{m.Attributes, d.Attributes} {
		for _, a := range attrs {
			switch a.Key {
			case sdp.AttrKeySendRecv, sdp.AttrKeySendOnly, sdp.AttrKeyRecvOnly, sdp.AttrKeyInactive:
				return a.Key
			}
		}
	}
	return sdp.AttrKeySendRecv
}

// checkDescription parses a description and checks what Pion would only
// find out half-way through applying it (leaving the peer connection in a
// state it cannot roll back from): ICE credentials and a DTLS fingerprint
// for every m-line that is not rejected.
func checkDescription(text string) (*sdp.SessionDescription, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(text); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSDP, err)
	}
	sessionHas := func(key string) bool { _, ok := d.Attribute(key); return ok }
	for i, m := range d.MediaDescriptions {
		if m.MediaName.Port.Value == 0 {
			continue
		}
		for _, key := range []string{"ice-ufrag", "ice-pwd", "fingerprint"} {
			if _, ok := m.Attribute(key); !ok && !sessionHas(key) {
				return nil, fmt.Errorf("%w: m-line %d has no a=%s", ErrBadSDP, i, key)
			}
		}
	}
	if err := checkTransport(&d); err != nil {
		return nil, err
	}
	return &d, nil
}
