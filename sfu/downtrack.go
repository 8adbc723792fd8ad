package sfu

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// DownTrack sends one UpTrack to one subscriber. It is a webrtc.TrackLocal:
// Pion binds it when the subscriber's answer arrives. Its Forwarder keeps
// the outgoing numbering continuous; NACKs are answered from the UpTrack's
// cache and keyframe requests go to the publisher, throttled there.
type DownTrack struct {
	id       string
	streamID string
	up       *UpTrack
	stats    *Counters

	wmu      sync.Mutex // serializes numbering and writing of forwarded and padding packets
	mu       sync.Mutex // guards the fields below
	fwd      *Forwarder
	writer   webrtc.TrackLocalWriter
	ssrc     uint32
	pt       uint8
	rtx      rtxStream // zero when RTX was not negotiated
	closed   bool
	maxLayer int8 // the largest simulcast layer the subscriber wants
	// allocLayer is the largest layer the subscriber's bandwidth affords
	// (the allocator's share), bwPaused that not even the smallest does.
	allocLayer int8
	bwPaused   bool
	userPaused bool // by its producer or its subscriber
	// The subscriber's view of the video (adaptive stream): the picture
	// size it shows it at (0: not said) and whether it is hidden.
	viewWidth, viewHeight int
	viewHidden            bool
	twccID                uint8
	ddID                  uint8                                   // AV1: the subscriber's id of the dependency descriptor, 0 = none
	bw                    *bandwidth                              // the subscriber's; nil in tests without one
	direct                *directPath                             // the subscriber's; nil: Pion's path only
	out                   srtpOut                                 // the direct path's SRTP context
	twccSent              atomic.Pointer[[twccRing]atomic.Uint64] // made at binding without RTX: what resends need
	noRouteTold           atomic.Bool

	priority atomic.Int32
	// onBandwidthPause, when set, learns when the allocator pauses or
	// resumes the track (from the subscriber's allocation goroutine).
	onBandwidthPause func(paused bool)

	// onLayer, when set, learns of each switch to another simulcast layer.
	// It is called from the up track's reader and must not block.
	onLayer func(layer int8)

	packets, octets atomic.Uint64 // sent, for sender reports
	reportSoon      func()        // asks the subscriber for sender reports now; set before binding
	onBound         func()        // tells the subscriber the track has its SSRC; set before binding

	rtxMu   sync.Mutex  // serializes retransmissions (RTCP goroutine, tests)
	rtxBufs *rtxBuffers // under rtxMu; made at the first retransmission (most tracks never make one)
	resent  [128]resend // under rtxMu: recent resends by sequence number
	padHdr  rtp.Header  // under wmu
	padTWCC twccExt     // under wmu
	padSeal []byte      // under wmu; made at the first padding packet

	pionReading bool // a goroutine reads its RTCP through Pion (guarded by its subscriber's mu)
}

// rtxBuffers are what a retransmission is made in.
type rtxBuffers struct {
	hdr  rtp.Header
	twcc twccExt
	buf  [maxPacketSize]byte
	dd   [255]byte
	seal [sealSize]byte
}

// resend is one packet resent, when (unix nanos).
type resend struct {
	seq uint16
	at  int64
}

// sealSize is room for a packet as sent: SRTP adds its tag.
const sealSize = maxPacketSize + 64

var _ webrtc.TrackLocal = (*DownTrack)(nil)

// NewDownTrack makes a down track of up. id names the consumer; streamID
// groups the tracks of one publishing peer (the browser's MediaStream).
func NewDownTrack(up *UpTrack, id, streamID string) *DownTrack {
	return &DownTrack{
		id:         id,
		streamID:   streamID,
		up:         up,
		stats:      &up.engine.Stats,
		fwd:        NewForwarder(up.codec.ClockRate, up.codecKind != codecAudio),
		maxLayer:   MaxLayers - 1,
		allocLayer: MaxLayers - 1,
	}
}

// SetPriority sets the track's share of its subscriber's bandwidth:
// PriorityHigh first, then PrioritySpeaker, then PriorityNormal.
func (d *DownTrack) SetPriority(p int) { d.priority.Store(int32(p)) }

// OnBandwidthPause sets a function told when the subscriber's bandwidth
// pauses the track (not even its smallest layer fits) or resumes it. Set
// before binding.
func (d *DownTrack) OnBandwidthPause(fn func(paused bool)) { d.onBandwidthPause = fn }

// setAllocation applies the allocator's share: the largest layer
// afforded, or -1 to pause for lack of bandwidth. It reports whether the
// bandwidth pause changed.
func (d *DownTrack) setAllocation(layer int8, temporal uint8) bool {
	d.mu.Lock()
	d.fwd.SetMaxTemporal(temporal)
	wasPaused := d.bwPaused
	d.bwPaused = layer < 0
	if layer >= 0 {
		d.allocLayer = layer
	}
	resumed := d.applyPauseLocked()
	changed := wasPaused != d.bwPaused && !d.closed
	if changed {
		if d.bwPaused {
			d.stats.PausedVideos.Add(1)
		} else {
			d.stats.PausedVideos.Add(-1)
		}
	}
	d.mu.Unlock()
	d.layersChanged()
	if resumed {
		d.requestKeyframe()
	}
	if changed {
		d.up.engine.log.Debug("bandwidth pause", "consumer", d.id, "publisher", d.streamID, "paused", d.bwPaused)
	}
	if changed && d.onBandwidthPause != nil {
		d.onBandwidthPause(d.bwPaused)
	}
	return changed
}

// applyPauseLocked pauses the forwarder while the user or the bandwidth
// says so; true when it resumed it.
func (d *DownTrack) applyPauseLocked() bool {
	want := d.userPaused || d.bwPaused || d.viewHidden
	switch {
	case want && !d.fwd.Paused():
		d.fwd.Pause()
	case !want && d.fwd.Paused():
		d.fwd.Resume()
		return true
	}
	return false
}

// OnLayerSwitch sets a function told of each switch to another simulcast
// layer (from a reader goroutine: it must not block). Set before binding.
func (d *DownTrack) OnLayerSwitch(fn func(layer int8)) { d.onLayer = fn }

// SetMaxLayer caps the simulcast layer sent: the largest layer arriving
// that is not above max is chosen (the smallest arriving one if none is).
func (d *DownTrack) SetMaxLayer(layer int8) {
	d.mu.Lock()
	d.maxLayer = min(max(layer, 0), MaxLayers-1)
	d.mu.Unlock()
	d.up.wantChanged()
	d.layersChanged()
}

// SetView says how the subscriber shows the video: at width x height
// pixels (0 x 0: not said), or not at all (hidden). No layer larger than
// the view needs is sent (the smallest covering it), and nothing while it
// is hidden.
func (d *DownTrack) SetView(width, height int, hidden bool) {
	d.mu.Lock()
	d.viewWidth, d.viewHeight = max(width, 0), max(height, 0)
	d.viewHidden = hidden
	resumed := d.applyPauseLocked()
	d.mu.Unlock()
	d.up.wantChanged()
	d.layersChanged()
	if resumed {
		d.requestKeyframe()
	}
}

// capLocked is the largest layer the subscriber wants: its preference,
// and no larger than its view needs.
func (d *DownTrack) capLocked() int8 {
	if d.viewWidth == 0 && d.viewHeight == 0 {
		return d.maxLayer
	}
	return min(d.maxLayer, d.up.layerFor(d.viewWidth, d.viewHeight))
}

// Layers reports the layer being sent (-1 before the first packet) and
// the one chosen.
func (d *DownTrack) Layers() (current, target int8) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fwd.Layer(), d.fwd.Target()
}

// layersChanged chooses the target layer again, as the arriving layers or
// the cap changed; a new target gets a keyframe request.
func (d *DownTrack) layersChanged() {
	live := d.up.LiveLayers(time.Now())
	d.mu.Lock()
	target := chooseLayer(live, min(d.capLocked(), d.allocLayer))
	changed := target >= 0 && target != d.fwd.Target()
	svc := d.up.svc.Load()
	if changed {
		d.fwd.SetTarget(target)
		if cur := d.fwd.Layer(); !svc && target < cur && d.allocLayer < cur && live&(1<<cur) != 0 {
			// The link cannot carry the current layer: stop it now rather
			// than keep flooding the link until the smaller one's keyframe
			// (which the flood would lose too).
			d.fwd.DropUntilKeyframe()
		}
	}
	cur := d.fwd.Layer()
	d.mu.Unlock()
	if changed {
		d.up.engine.log.Debug("layer target", "consumer", d.id, "publisher", d.streamID, "target", target, "current", cur)
		if d.transportUp() && (!svc || target > cur) {
			// (A scalable stream's smaller layers need no keyframe: they
			// are in every picture, and refer to nothing above them.)
			d.up.requestKeyframe(target)
		}
	}
}

// chooseLayer picks from a set of live layers the largest not above
// maxLayer, else the smallest; -1 for none.
func chooseLayer(live uint8, maxLayer int8) int8 {
	for l := maxLayer; l >= 0; l-- {
		if live&(1<<l) != 0 {
			return l
		}
	}
	for l := int8(0); l < MaxLayers; l++ {
		if live&(1<<l) != 0 {
			return l
		}
	}
	return -1
}

// ID implements webrtc.TrackLocal.
func (d *DownTrack) ID() string { return d.id }

// RID implements webrtc.TrackLocal.
func (d *DownTrack) RID() string { return "" }

// StreamID implements webrtc.TrackLocal.
func (d *DownTrack) StreamID() string { return d.streamID }

// Kind implements webrtc.TrackLocal.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.up.Kind() }

// Bind implements webrtc.TrackLocal.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	codec, ok := matchCodec(ctx.CodecParameters(), d.up.codec)
	if !ok {
		return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
	}
	d.mu.Lock()
	if d.closed {
		// Removed while the answer that binds it was being applied: bind
		// to nothing rather than fail the whole answer.
		d.mu.Unlock()
		return codec, nil
	}
	d.writer = ctx.WriteStream()
	d.ssrc = uint32(ctx.SSRC())
	// Transport-wide numbers only where the receiver reports on them (it
	// negotiated transport-cc feedback for this codec): a numbered packet
	// left out of its feedback would read as lost.
	for _, ext := range ctx.HeaderExtensions() {
		switch {
		case ext.URI == sdp.TransportCCURI && hasFeedback(codec, webrtc.TypeRTCPFBTransportCC):
			d.twccID = uint8(ext.ID)
		case ext.URI == dependencyDescriptorURI && d.up.codecKind == codecAV1:
			d.ddID = uint8(ext.ID)
		}
	}
	d.pt = uint8(codec.PayloadType)
	if rtx, ok := rtxFor(ctx.CodecParameters(), codec.PayloadType); ok && ctx.SSRCRetransmission() != 0 {
		d.rtx = rtxStream{ssrc: uint32(ctx.SSRCRetransmission()), pt: uint8(rtx.PayloadType)}
	}
	if d.twccID != 0 && d.rtx.ssrc == 0 && d.twccSent.Load() == nil {
		d.twccSent.Store(new([twccRing]atomic.Uint64))
	}
	d.mu.Unlock()
	if d.onBound != nil {
		d.onBound()
	}
	d.up.addDown(d)
	d.layersChanged()
	d.requestKeyframe()
	return codec, nil
}

var errDownTrackClosed = errors.New("sfu: down track closed")

// Unbind implements webrtc.TrackLocal.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	d.up.removeDown(d)
	d.mu.Lock()
	d.writer = nil
	d.mu.Unlock()
	return nil
}

// close detaches the down track from its up track for good.
func (d *DownTrack) close() {
	d.up.removeDown(d)
	d.mu.Lock()
	if d.bwPaused && !d.closed {
		d.stats.PausedVideos.Add(-1)
	}
	d.closed = true
	d.writer = nil
	d.mu.Unlock()
}

// Pause stops forwarding; Resume restarts it at the next keyframe with
// continuous numbering.
func (d *DownTrack) Pause() {
	d.mu.Lock()
	d.userPaused = true
	d.applyPauseLocked()
	d.mu.Unlock()
	d.up.wantChanged()
}

// Resume restarts a paused down track (unless its subscriber's bandwidth
// keeps it paused).
func (d *DownTrack) Resume() {
	d.mu.Lock()
	d.userPaused = false
	resumed := d.applyPauseLocked()
	d.mu.Unlock()
	d.up.wantChanged()
	if resumed {
		d.requestKeyframe()
	}
}

// transportUp reports whether packets written now can leave: the
// subscriber's DTLS is up (always, for a down track of no subscriber).
func (d *DownTrack) transportUp() bool { return d.bw == nil || d.bw.ready.Load() }

// requestKeyframe asks for a keyframe of the layer chosen, once the
// transport is up (the subscriber asks for each track then): a keyframe
// that came before would be dropped, and the request for it would hold
// back the next one.
func (d *DownTrack) requestKeyframe() {
	if !d.transportUp() {
		return
	}
	d.mu.Lock()
	target := d.fwd.Target()
	d.mu.Unlock()
	d.up.requestKeyframe(target)
}

// forward sends one packet of the up track. Called by the up track's
// reader only; never blocks (UDP writes do not, ICE-TCP drops when full).
func (d *DownTrack) forward(p *upPacket) {
	if !d.transportUp() {
		// Pion drops what is written before DTLS is up, a keyframe with
		// it, and the receiver would wait a PLI round trip for the next.
		// The forwarder starts at the keyframe asked for once it is up.
		return
	}
	in := InPacket{
		ExtSeq: p.extSeq, Timestamp: p.header.Timestamp, Keyframe: p.keyframe, Arrival: p.arrival,
		Layer: p.layer, Marker: p.header.Marker, RefTS: p.refTS, RefOK: p.refOK, SVC: p.svc && p.hasDesc,
	}
	if p.hasDesc {
		in.Desc = &p.desc
	}
	// One layer's reader, or the prober, writes at a time, so that packets
	// leave in the order they were numbered.
	d.wmu.Lock()
	defer d.wmu.Unlock()
	d.mu.Lock()
	before := d.fwd.Layer()
	dec := d.fwd.Process(in)
	now := d.fwd.Layer()
	switched := now != before
	w, ssrc, pt, twccID, ddID := d.writer, d.ssrc, d.pt, d.twccID, d.ddID
	d.mu.Unlock()
	if dec.RequestKeyframe && len(p.payload) > 0 { // (padding says nothing of a layer's frames)
		d.up.requestKeyframe(p.layer)
	}
	if switched {
		d.stats.LayerSwitches.Add(1)
		d.up.engine.log.Debug("layer switch", "consumer", d.id, "publisher", d.streamID, "layer", now)
		if d.onLayer != nil {
			d.onLayer(now)
		}
	}
	if !dec.Forward || w == nil {
		return
	}
	h := &p.out
	*h = p.header
	h.Extension, h.Extensions = false, nil
	h.SSRC, h.PayloadType = ssrc, pt
	h.SequenceNumber, h.Timestamp, h.Marker = dec.Seq, dec.Timestamp, dec.Marker
	payload := p.payload
	if dec.RewriteVP8 {
		payload = p.scratch[:copy(p.scratch[:], payload)]
		writeVP8(payload, &p.desc, dec.PictureID, dec.TL0PICIDX)
	}
	dd := p.dd
	if ddID == 0 {
		dd = nil
	}
	if twccID != 0 && d.bw != nil {
		twcc, numbered := d.bw.number(h, &p.twcc, twccID, len(payload)+len(dd), p.arrival)
		d.noteTWCC(h.SequenceNumber, twcc, numbered)
	}
	if len(dd) > 0 {
		setDD(h, &p.twcc, ddID, dd)
	}
	// Pion reports (0, nil) while DTLS is not up yet: nothing was sent.
	if n, err := d.write(w, h, payload, p.sealed[:]); err != nil || n == 0 {
		d.stats.DroppedOut.Add(1)
	} else {
		d.stats.PacketsOut.Add(1)
		d.stats.BytesOut.Add(uint64(n))
		if d.packets.Add(1) == 1 && d.reportSoon != nil {
			d.reportSoon() // a receiver places the track sooner with a report
		}
		d.octets.Add(uint64(len(payload)))
	}
}

// write sends one packet of d's streams: on the direct path when it can
// be taken (sealed in buf, which the caller owns), else through Pion
// (srtpOut.send).
func (d *DownTrack) write(w webrtc.TrackLocalWriter, h *rtp.Header, payload, buf []byte) (int, error) {
	k, r := d.direct.take()
	n, err := d.out.send(k, r, w, h, payload, buf)
	if err == errNoRoute && !d.noRouteTold.Swap(true) {
		d.up.engine.log.Warn("direct path lost its route (ICE moved off UDP): this subscriber's media stops until it reconnects",
			"consumer", d.id, "publisher", d.streamID)
	}
	return n, err
}

// twccRing is how many forwarded packets' transport-wide numbers a down
// track keeps for resending them (without RTX) as they were.
const twccRing = 512

// noteTWCC keeps the transport-wide number packet seq is sent with
// (numbered false: none).
func (d *DownTrack) noteTWCC(seq, twcc uint16, numbered bool) {
	ring := d.twccSent.Load()
	if ring == nil {
		return // RTX: resends get numbers of their own
	}
	v := uint64(0)
	if numbered {
		v = 1<<32 | uint64(seq)<<16 | uint64(twcc)
	}
	ring[seq%twccRing].Store(v)
}

// sentTWCC is the transport-wide number packet seq was sent with.
func (d *DownTrack) sentTWCC(seq uint16) (uint16, bool) {
	ring := d.twccSent.Load()
	if ring == nil {
		return 0, false
	}
	v := ring[seq%twccRing].Load()
	return uint16(v), v>>32 == 1 && uint16(v>>16) == seq
}

// setDD puts an AV1 dependency descriptor into h, after the extensions
// it has (in exts' room: no allocation), two-byte when it needs.
func setDD(h *rtp.Header, ext *twccExt, id uint8, dd []byte) {
	if !h.Extension {
		h.Extensions = ext.exts[:0]
	}
	profile := uint16(rtp.ExtensionProfileOneByte)
	if len(dd) > 16 || id > 14 {
		profile = rtp.ExtensionProfileTwoByte
	}
	_ = h.SetExtensionWithProfile(id, dd, profile)
}

// rtxStream is the RFC 4588 retransmission stream of a down track.
type rtxStream struct {
	ssrc uint32
	pt   uint8
	seq  uint16 // guarded by DownTrack.rtxMu
}

// retransmit resends the packet the subscriber knows as seq, if the cache
// still has it and it belongs to one of the last segments: on the RTX
// stream when one was negotiated, else as it was first sent.
func (d *DownTrack) retransmit(seq uint16) bool {
	d.mu.Lock()
	target, ok := d.fwd.MapNackTarget(seq)
	w, ssrc, pt, rtxSSRC, rtxPT, twccID, ddID := d.writer, d.ssrc, d.pt, d.rtx.ssrc, d.rtx.pt, d.twccID, d.ddID
	d.mu.Unlock()
	l := d.up.layer(target.Layer)
	if !ok || w == nil || l == nil {
		return false
	}
	inExt, tsOffset, picOffset, tl0Offset, svc := target.InExt, target.TSOffset, target.PicOffset, target.TL0Offset, d.up.svc.Load()
	d.rtxMu.Lock()
	defer d.rtxMu.Unlock()
	if d.rtxBufs == nil {
		d.rtxBufs = new(rtxBuffers)
	}
	rb := d.rtxBufs
	// Leave two bytes in front of the payload for RTX's original sequence number.
	n := l.cache.get(inExt, rb.buf[2:])
	if n == 0 {
		return false
	}
	if d.bw != nil && !d.bw.allowResend(n, time.Now()) {
		d.stats.ResendsSkipped.Add(1)
		return false
	}
	payload, err := parseRTP(rb.buf[2:2+n], &rb.hdr)
	if err != nil {
		return false
	}
	h := &rb.hdr
	var dd []byte
	if d.up.ddExt != 0 {
		// Kept aside: RTX writes over the header's last bytes.
		dd = rb.dd[:copy(rb.dd[:], h.GetExtension(d.up.ddExt))]
	}
	// As it was first sent: in the subscriber's picture numbering, ending
	// the picture where the subscriber's pictures end.
	var desc payloadDesc
	ok = false
	switch d.up.codecKind {
	case codecVP8:
		ok = (picOffset != 0 || tl0Offset != 0) && parseVP8(payload, &desc)
	case codecVP9:
		ok = (picOffset != 0 || tl0Offset != 0 || svc) && parseVP9(payload, &desc)
	case codecAV1:
		if shape := l.ddShape.Load(); svc && len(dd) > 0 && shape != nil {
			s := *shape
			ok = parseDD(dd, &s, &desc)
		}
	}
	if ok && desc.picIDLen != 0 && (picOffset != 0 || tl0Offset != 0) {
		writeVP8(payload, &desc, (desc.picID-picOffset)&desc.picIDMask(), desc.tl0-tl0Offset)
	}
	if ok && svc && desc.layerEnd && int8(desc.sid) == target.Spatial {
		h.Marker = true
	}
	if ddID == 0 {
		dd = nil
	}
	h.Extension, h.Extensions = false, h.Extensions[:0]
	h.SSRC, h.PayloadType = ssrc, pt
	if twccID != 0 && d.bw != nil && rtxSSRC == 0 {
		// Without RTX the packet goes again under its first SRTP index, so
		// it must be the same bytes, its transport-wide number included: an
		// index encrypted twice with different headers gives away AES-GCM's
		// authentication key. (Chromium leaves the RTX stream out of its
		// TWCC feedback: packets there are not numbered.)
		twcc, ok := d.sentTWCC(seq)
		if !ok {
			return false
		}
		rb.twcc.seq = [2]byte{byte(twcc >> 8), byte(twcc)}
		h.Extensions = rb.twcc.exts[:0]
		_ = h.SetExtension(twccID, rb.twcc.seq[:])
	}
	if len(dd) > 0 {
		setDD(h, &rb.twcc, ddID, dd)
	}
	h.SequenceNumber, h.Timestamp = seq, h.Timestamp-tsOffset
	if rtxSSRC != 0 {
		// The packet sits at buf[2:]; its header (at least 12 bytes) is
		// parsed, so the two bytes before the payload are free to overwrite.
		start := 2 + n - int(h.PaddingSize) - len(payload)
		payload = rb.buf[start-2 : start+len(payload)]
		payload[0], payload[1] = byte(seq>>8), byte(seq)
		h.SSRC, h.PayloadType = rtxSSRC, rtxPT
		h.SequenceNumber = d.rtx.seq
		d.rtx.seq++
	}
	if n, err := d.write(w, h, payload, rb.seal[:]); err != nil || n == 0 {
		return false
	}
	d.stats.Retransmits.Add(1)
	return true
}

// hasFeedback reports whether codec negotiated RTCP feedback of typ.
func hasFeedback(codec webrtc.RTPCodecParameters, typ string) bool {
	for _, f := range codec.RTCPFeedback {
		if f.Type == typ {
			return true
		}
	}
	return false
}

// rtxFor finds the RTX codec whose apt is pt.
func rtxFor(codecs []webrtc.RTPCodecParameters, pt webrtc.PayloadType) (webrtc.RTPCodecParameters, bool) {
	apt := strconv.Itoa(int(pt))
	for _, c := range codecs {
		if strings.EqualFold(c.MimeType, webrtc.MimeTypeRTX) && parseFmtp(c.SDPFmtpLine)["apt"] == apt {
			return c, true
		}
	}
	return webrtc.RTPCodecParameters{}, false
}

// Limits on answering NACKs, so that a subscriber cannot make the server
// resend more than a lost stretch of media.
const (
	maxResendsPerNack = 64                     // sequence numbers answered per NACK packet
	resendInterval    = 100 * time.Millisecond // least time between two resends of one packet
)

// answerNack resends what a NACK asks for, at most maxResendsPerNack
// packets and each packet at most once per resendInterval.
func (d *DownTrack) answerNack(n *rtcp.TransportLayerNack, now time.Time) {
	// The resends leave in one send call.
	d.up.engine.beginRound()
	defer d.up.engine.endRound()
	budget := maxResendsPerNack
	for _, pair := range n.Nacks {
		seqs := [17]uint16{pair.PacketID}
		count := 1
		for i := range uint16(16) {
			if pair.LostPackets&(1<<i) != 0 {
				seqs[count] = pair.PacketID + i + 1
				count++
			}
		}
		for _, seq := range seqs[:count] {
			d.stats.NacksIn.Add(1)
			if budget == 0 || !d.resendDue(seq, now) {
				continue
			}
			budget--
			d.retransmit(seq)
		}
	}
}

// resendDue reports whether seq was not resent in the last resendInterval,
// and records this resend.
func (d *DownTrack) resendDue(seq uint16, now time.Time) bool {
	d.rtxMu.Lock()
	defer d.rtxMu.Unlock()
	slot := &d.resent[seq%uint16(len(d.resent))]
	at := now.UnixNano()
	if slot.seq == seq && at-slot.at < int64(resendInterval) {
		return false
	}
	slot.seq, slot.at = seq, at
	return true
}

// boundSSRC is the SSRC the down track sends with, 0 before binding.
func (d *DownTrack) boundSSRC() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ssrc
}

// keyframeAsked answers a subscriber's PLI or FIR.
func (d *DownTrack) keyframeAsked() {
	d.stats.PLIsIn.Add(1)
	d.requestKeyframe()
}

// readRTCP handles the subscriber's feedback that comes through Pion
// (before the direct path is taken, or over ICE-TCP: srtcpin.go) until
// the sender stops. Pion gives a compound packet to every track it names:
// only what is for this one is taken.
func (d *DownTrack) readRTCP(sender *webrtc.RTPSender) {
	for {
		pkts, _, err := sender.ReadRTCP()
		if err != nil {
			return
		}
		ssrc := d.boundSSRC()
		actOnRTCP(pkts, time.Now(), d.bw, func(id uint32) *DownTrack {
			if id == ssrc {
				return d
			}
			return nil
		})
	}
}

// matchCodec finds the subscriber's codec that carries what the publisher
// sends: the same MIME type and, for H264 and VP9, the same profile.
func matchCodec(offered []webrtc.RTPCodecParameters, want webrtc.RTPCodecParameters) (webrtc.RTPCodecParameters, bool) {
	var sameMime []webrtc.RTPCodecParameters
	for _, c := range offered {
		if strings.EqualFold(c.MimeType, want.MimeType) {
			sameMime = append(sameMime, c)
		}
	}
	for _, c := range sameMime {
		if sameProfile(c.SDPFmtpLine, want.SDPFmtpLine, want.MimeType) {
			return c, true
		}
	}
	if len(sameMime) > 0 && codecKindOf(want.MimeType) != codecH264 {
		return sameMime[0], true
	}
	return webrtc.RTPCodecParameters{}, false
}

// sameProfile compares the fmtp parameters that change how a stream decodes.
func sameProfile(a, b, mime string) bool {
	fa, fb := parseFmtp(a), parseFmtp(b)
	switch codecKindOf(mime) {
	case codecH264:
		pa, pb := fa["profile-level-id"], fb["profile-level-id"]
		return fa["packetization-mode"] == fb["packetization-mode"] &&
			len(pa) >= 2 && len(pb) >= 2 && strings.EqualFold(pa[:2], pb[:2])
	case codecVP9:
		profile := func(f map[string]string) string { // RFC 9628: absent means 0
			if p := f["profile-id"]; p != "" {
				return p
			}
			return "0"
		}
		return profile(fa) == profile(fb)
	}
	return true
}

func parseFmtp(line string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(line, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if k != "" {
			m[strings.ToLower(k)] = v
		}
	}
	return m
}

// Paused reports whether the down track is paused by its producer or
// subscriber (not by bandwidth).
func (d *DownTrack) Paused() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.userPaused
}
