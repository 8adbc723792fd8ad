package sfu

import "time"

// Forwarder decides, for one subscriber track, which incoming packets go
// out and with which sequence number, timestamp and (VP8) picture ID. It
// is a pure state machine (no I/O, no locks): the down track calls it
// under its own lock.
//
// Outgoing numbering stays continuous across pauses and simulcast layer
// switches: each run of forwarded packets is a segment of one layer with
// its own offsets, and a new segment continues where the previous one
// ended. A switch to another layer starts a segment at that layer's next
// keyframe; until then the current layer goes on.
type Forwarder struct {
	clockRate uint32
	video     bool

	started      bool // a segment has begun at least once
	paused       bool
	needSegment  bool // the next accepted packet starts a new segment
	waitKeyframe bool // video: drop until a keyframe starts the segment

	layer  int8 // simulcast layer (stream) of the current segment; -1 before the first
	target int8 // spatial layer to forward: a switch waits for its keyframe

	// A scalable stream (VP9 or AV1 SVC, InPacket.SVC): its one stream holds
	// every spatial layer, and layer frames above spatial are dropped;
	// target is the spatial layer wanted. spatial goes down at the next
	// picture, up at a layer frame that refers to no earlier picture (a
	// keyframe's).
	svc     bool
	spatial int8
	picTop  int8 // the spatial layer whose layer frame ends this picture
	keyPic  bool // this picture is a keyframe: each of its layer frames may raise spatial
	// VP9 and AV1 temporal layers go up after a picture that is a
	// switching-up point (VP9's U, AV1's base layer), forwarded and
	// followed by no dropped one.
	upSwitch bool

	segStart  uint64 // first incoming extended seq of the current segment
	seqOffset uint64 // outExt = inExt - seqOffset
	tsOffset  uint32 // outTS = inTS - tsOffset

	highestIn   uint64 // highest incoming extended seq forwarded in this segment
	lastOutExt  uint64
	lastOutTS   uint32
	lastOutTime time.Time
	lastRefTS   uint32 // the publisher's capture clock of the last packet, when known
	lastRefOK   bool
	lastMarker  bool // the last packet sent ended a frame

	vp8 vp8Numbering

	// Temporal layers: frames of a layer above maxTemporal are dropped
	// (their numbers taken out of the sequence, and for VP8 out of the
	// picture IDs); wantTemporal above it is reached, for VP8, a layer at a
	// time at a frame that depends only on the base layer (Y), for VP9 and
	// AV1 after a switching-up picture (upSwitch), or at a keyframe.
	maxTemporal, wantTemporal uint8
	dropPic                   uint16 // the picture ID of the last frame dropped
	dropped                   bool   // a frame has been dropped (dropPic is valid)

	// Video: the outgoing extended sequence number of the keyframe that
	// began the last segment begun at one (valid when keyOK). Nothing sent
	// before it is worth resending: the subscriber's decoder starts over
	// at it.
	keyOut uint64
	keyOK  bool

	// Finished segments, newest last, kept so that NACKs of their packets
	// (before a layer switch or padding) can still be answered: a probe
	// pads after every frame, each padding ending a segment, and every
	// run of dropped layer frames ends one.
	past  [32]pastSegment
	pastN int
}

// pastSegment is a finished run of forwarded packets.
type pastSegment struct {
	layer, spatial int8
	inStart, inEnd uint64 // incoming extended sequence numbers
	seqOffset      uint64
	tsOffset       uint32
	picOffset      uint16
	tl0Offset      uint8
}

// NackTarget is the packet a NACKed sequence number stands for: which
// layer's cache holds it, and how it was rewritten when first sent.
type NackTarget struct {
	InExt     uint64
	Layer     int8
	Spatial   int8 // of a scalable stream: the highest spatial layer sent (its layer frames end the picture)
	TSOffset  uint32
	PicOffset uint16
	TL0Offset uint8
}

// vp8Numbering keeps VP8 picture IDs and TL0PICIDX continuous for the
// subscriber: out = in - offset within a segment, and a new segment
// continues from the last values sent.
type vp8Numbering struct {
	started   bool
	picOffset uint16
	tl0Offset uint8
	lastPic   uint16 // last sent (of the highest packet), already masked
	lastTL0   uint8
}

// InPacket is what the forwarder needs to know of an incoming packet.
type InPacket struct {
	ExtSeq    uint64
	Timestamp uint32
	Keyframe  bool
	Arrival   time.Time
	Layer     int8 // simulcast layer (stream), 0 for a track without simulcast
	Marker    bool // the last packet of a frame
	// SVC: the stream is scalable (VP9 or AV1 with spatial layers in Desc).
	SVC bool
	// RefTS is the packet's capture time on the publisher's wall clock in
	// RTP ticks (from its sender reports), the same for every layer of a
	// track; RefOK says whether it is known yet.
	RefTS uint32
	RefOK bool
	// Desc is the packet's VP8 or VP9 payload descriptor, or what AV1's
	// dependency descriptor says of it (nil for other codecs).
	Desc *payloadDesc
}

// Decision says what to do with one incoming packet.
type Decision struct {
	Forward         bool
	Seq             uint16
	Timestamp       uint32
	RequestKeyframe bool // ask the publisher for a keyframe (the caller throttles)
	// RewriteVP8: write PictureID and TL0PICIDX into the VP8 descriptor.
	RewriteVP8 bool
	PictureID  uint16
	TL0PICIDX  uint8
	// Marker is the RTP marker bit to send: the last packet of a picture
	// as the subscriber gets it (a scalable stream's highest layer sent).
	Marker bool
}

// NewForwarder makes a forwarder for a track with the given RTP clock rate.
// Video tracks start at a keyframe.
func NewForwarder(clockRate uint32, video bool) *Forwarder {
	return &Forwarder{clockRate: clockRate, video: video, needSegment: true, waitKeyframe: video, layer: -1,
		maxTemporal: AllTemporal, wantTemporal: AllTemporal}
}

// AllTemporal forwards every temporal layer.
const AllTemporal = 3

// SetMaxTemporal chooses the highest temporal layer to forward (VP8, VP9,
// AV1; 0 is the base, AllTemporal all). Going down takes effect at the next frame
// (no frame below depends on those above; a frame is never cut); going
// up, at the next frame that can start the higher layer.
func (f *Forwarder) SetMaxTemporal(t uint8) { f.wantTemporal = min(t, AllTemporal) }

// MaxTemporal is the highest temporal layer forwarded now.
func (f *Forwarder) MaxTemporal() uint8 { return f.maxTemporal }

// SetTarget chooses the spatial layer to forward. A change takes effect at
// that layer's next keyframe; the current layer goes on until then.
func (f *Forwarder) SetTarget(layer int8) { f.target = layer }

// DropUntilKeyframe stops forwarding the current layer at once: the next
// packet sent is a keyframe of the target layer (a new segment).
func (f *Forwarder) DropUntilKeyframe() {
	if f.started && !f.paused {
		f.needSegment, f.waitKeyframe = true, f.video
	}
}

// Target is the layer chosen by SetTarget.
func (f *Forwarder) Target() int8 { return f.target }

// Layer is the spatial layer being forwarded (the simulcast layer, or the
// highest spatial layer of a scalable stream), -1 before the first packet.
func (f *Forwarder) Layer() int8 {
	if f.svc && f.started {
		return f.spatial
	}
	return f.layer
}

// Pause stops forwarding until Resume.
func (f *Forwarder) Pause() { f.paused = true }

// Resume restarts forwarding with a new segment (at a keyframe for video).
func (f *Forwarder) Resume() {
	if !f.paused {
		return
	}
	f.paused = false
	f.needSegment = true
	f.waitKeyframe = f.video
}

// Paused reports whether the forwarder is paused.
func (f *Forwarder) Paused() bool { return f.paused }

// Process decides the fate of one incoming packet.
func (f *Forwarder) Process(p InPacket) Decision {
	if f.paused {
		return Decision{}
	}
	stream := f.target
	if p.SVC {
		f.svc, stream = true, p.Layer
	}
	if f.needSegment || p.Layer != f.layer {
		// Another layer than the one chosen: the current one goes on
		// until the target's keyframe arrives. But before anything was
		// sent, a lower layer's keyframe starts the stream meanwhile: the
		// target's may be long in coming (a publisher short of link or CPU
		// sends its top layer thinly or not at all), and the subscriber
		// would see nothing.
		if p.Layer != stream && (f.layer >= 0 || !f.video || p.SVC || !p.Keyframe || p.Layer > stream) {
			return Decision{}
		}
		if p.Layer == f.layer && f.started && p.ExtSeq <= f.highestIn {
			// Reordered or duplicated from before the pause: already sent or
			// dropped on purpose; starting the segment on it would jump back.
			return Decision{}
		}
		if (f.waitKeyframe || p.Layer != f.layer) && f.video && !p.Keyframe {
			return Decision{RequestKeyframe: true}
		}
		f.startSegment(p)
		if f.video && p.Keyframe {
			f.keyOut, f.keyOK = p.ExtSeq-f.seqOffset, true
		}
	} else if p.ExtSeq < f.segStart {
		// A late packet from before this segment began: its number space is gone.
		return Decision{}
	}
	if p.Desc != nil && p.Desc.hasTID && f.drop(p) {
		return Decision{}
	}
	outExt := p.ExtSeq - f.seqOffset
	outTS := p.Timestamp - f.tsOffset
	d := Decision{Forward: true, Seq: uint16(outExt), Timestamp: outTS, Marker: p.Marker}
	if p.SVC && p.Desc.layerEnd && int8(p.Desc.sid) == max(f.spatial, f.picTop) {
		d.Marker = true // the picture ends here for this subscriber
	}
	if p.SVC && p.Desc.start && f.target > f.spatial && !p.Keyframe {
		d.RequestKeyframe = true // a larger layer starts at a keyframe (the caller throttles)
	}
	if p.Desc != nil && p.Desc.picIDLen != 0 {
		d.PictureID = (p.Desc.picID - f.vp8.picOffset) & p.Desc.picIDMask()
		d.TL0PICIDX = p.Desc.tl0 - f.vp8.tl0Offset
		d.RewriteVP8 = f.vp8.picOffset != 0 || f.vp8.tl0Offset != 0
	}
	if p.ExtSeq > f.highestIn {
		f.highestIn = p.ExtSeq
		f.lastOutExt = outExt
		f.lastOutTS = outTS
		f.lastOutTime = p.Arrival
		f.lastRefTS, f.lastRefOK = p.RefTS, p.RefOK
		f.lastMarker = d.Marker
		if p.Desc != nil && p.Desc.picIDLen != 0 {
			f.vp8.lastPic, f.vp8.lastTL0 = d.PictureID, d.TL0PICIDX
		}
	}
	return d
}

// drop reports whether p is of a temporal or spatial layer not forwarded
// now; a dropped packet in sequence leaves no gap (it ends the segment:
// the next one continues the numbering, and NACKs of what went before
// still map), and a dropped VP8 frame no gap in the picture IDs. (VP9's
// receivers work out references from picture ID differences: its gaps
// stay.)
func (f *Forwarder) drop(p InPacket) bool {
	d := p.Desc
	if d.start && p.Keyframe {
		// A keyframe refers to nothing: it goes whatever its temporal
		// layer (a segment may start at it), and the cap comes down at
		// the next frame.
		f.maxTemporal = max(f.wantTemporal, d.tid)
	} else if d.start && f.maxTemporal != f.wantTemporal {
		switch {
		case f.wantTemporal < f.maxTemporal:
			f.maxTemporal = f.wantTemporal
		case !d.scalable() && d.sync && d.tid == f.maxTemporal+1:
			f.maxTemporal++
		case d.scalable() && f.upSwitch:
			f.maxTemporal = f.wantTemporal
		}
	}
	if p.SVC && d.layerStart {
		sid := int8(d.sid)
		lower := sid == 0 && f.target < f.spatial
		if sid == 0 {
			f.keyPic = p.Keyframe
		}
		raise := sid == f.spatial+1 && sid <= f.target && (!d.interPic || f.keyPic)
		if lower || raise {
			// Down at a picture's start, up at a layer frame that needs
			// no earlier picture: a segment each, so that NACKs of the
			// packets before are answered with the marker they had.
			f.keepSegment()
			f.segStart = p.ExtSeq
			f.spatial = sid
			if lower {
				f.spatial = f.target
			}
		}
		if sid == 0 {
			// The picture's last layer frame sent: above spatial when a
			// keyframe is to raise it.
			f.picTop = f.spatial
			if p.Keyframe && d.layerCount > 0 {
				f.picTop = max(f.spatial, min(f.target, int8(d.layerCount)-1))
			}
		}
	}
	dropped := d.tid > f.maxTemporal || p.SVC && int8(d.sid) > f.spatial
	if d.scalable() && d.start {
		f.upSwitch = !dropped && d.sync
	} else if d.scalable() && dropped {
		f.upSwitch = false
	}
	if !dropped {
		return false
	}
	if p.ExtSeq > f.highestIn {
		f.keepSegment()
		f.seqOffset++
		f.highestIn = p.ExtSeq
		f.segStart = p.ExtSeq + 1
		if !d.scalable() && d.picIDLen != 0 && (!f.dropped || d.picID != f.dropPic) {
			f.vp8.picOffset++
			f.dropPic, f.dropped = d.picID, true
		}
	}
	return true
}

func (f *Forwarder) startSegment(p InPacket) {
	f.keepSegment()
	f.needSegment = false
	f.waitKeyframe = false
	f.layer = p.Layer
	if p.SVC {
		f.spatial = 0 // a keyframe: its layer frames above raise it to the target
	}
	f.segStart = p.ExtSeq
	f.highestIn = p.ExtSeq
	f.startVP8(p.Desc)
	if !f.started {
		// First segment: keep the publisher's numbering.
		f.started = true
		f.seqOffset = 0
		f.tsOffset = 0
		f.lastOutExt = p.ExtSeq
		f.lastOutTS = p.Timestamp
		f.lastOutTime = p.Arrival
		f.lastRefTS, f.lastRefOK = p.RefTS, p.RefOK
		return
	}
	nextExt := f.lastOutExt + 1
	f.seqOffset = p.ExtSeq - nextExt
	// The time since the last packet sent: on the publisher's capture clock
	// when both packets are placed on it (layers of a track have unrelated
	// RTP clocks), else by arrival.
	ticks := max(1, rtpTicks(p.Arrival.Sub(f.lastOutTime), f.clockRate))
	if p.RefOK && f.lastRefOK {
		// The same capture instant (a layer's keyframe of a frame already
		// sent on another) goes one tick later: no two frames share a time.
		ticks = uint32(max(1, int32(p.RefTS-f.lastRefTS)))
	}
	f.tsOffset = p.Timestamp - (f.lastOutTS + ticks)
	f.lastOutExt = nextExt
	f.lastOutTS = p.Timestamp - f.tsOffset
	f.lastOutTime = p.Arrival
	f.lastRefTS, f.lastRefOK = p.RefTS, p.RefOK
}

// startVP8 continues the picture numbering at a segment's first packet.
func (f *Forwarder) startVP8(d *payloadDesc) {
	if d == nil || d.picIDLen == 0 {
		return
	}
	if !f.vp8.started {
		f.vp8 = vp8Numbering{started: true, lastPic: d.picID - 1, lastTL0: d.tl0 - 1}
		return
	}
	f.vp8.picOffset = (d.picID - (f.vp8.lastPic + 1)) & d.picIDMask()
	f.vp8.tl0Offset = d.tl0 - (f.vp8.lastTL0 + 1)
}

// MapNack translates a sequence number the subscriber asked for into the
// incoming extended sequence number, if it belongs to the current segment.
func (f *Forwarder) MapNack(outSeq uint16) (uint64, bool) {
	if !f.started || f.needSegment {
		return 0, false
	}
	outExt := extendNear(f.lastOutExt, outSeq)
	inExt := outExt + f.seqOffset
	if inExt < f.segStart || inExt > f.highestIn {
		return 0, false
	}
	return inExt, true
}

// keepSegment files the current segment away for NACKs.
func (f *Forwarder) keepSegment() {
	if !f.started || f.highestIn < f.segStart {
		return
	}
	if f.pastN == len(f.past) {
		copy(f.past[:], f.past[1:])
		f.pastN--
	}
	f.past[f.pastN] = pastSegment{
		layer: f.layer, spatial: f.spatial, inStart: f.segStart, inEnd: f.highestIn, seqOffset: f.seqOffset, tsOffset: f.tsOffset,
		picOffset: f.vp8.picOffset, tl0Offset: f.vp8.tl0Offset,
	}
	f.pastN++
}

// MapNackTarget finds the packet a NACKed sequence number stands for, in
// the current segment or one of the last finished ones; none for a video
// packet sent before the keyframe that began a later segment (after a
// layer switch or a pause, the subscriber's decoder starts over at that
// keyframe: resending what came before would only take the link's room
// from what it needs).
func (f *Forwarder) MapNackTarget(outSeq uint16) (NackTarget, bool) {
	if !f.started {
		return NackTarget{}, false
	}
	outExt := extendNear(f.lastOutExt, outSeq)
	if f.keyOK && outExt < f.keyOut {
		return NackTarget{}, false
	}
	if in := outExt + f.seqOffset; !f.needSegment && in >= f.segStart && in <= f.highestIn {
		return NackTarget{InExt: in, Layer: f.layer, Spatial: f.spatial, TSOffset: f.tsOffset, PicOffset: f.vp8.picOffset, TL0Offset: f.vp8.tl0Offset}, true
	}
	for i := f.pastN - 1; i >= 0; i-- {
		s := &f.past[i]
		if in := outExt + s.seqOffset; in >= s.inStart && in <= s.inEnd {
			return NackTarget{InExt: in, Layer: s.layer, Spatial: s.spatial, TSOffset: s.tsOffset, PicOffset: s.picOffset, TL0Offset: s.tl0Offset}, true
		}
	}
	return NackTarget{}, false
}

// Padding takes n sequence numbers for padding-only packets sent right
// after the last packet, when that packet ended a frame (so that no packet
// of the frame comes after them) or nothing is being forwarded (paused,
// or waiting for a keyframe): the first, and the timestamp to give them
// (the last frame's). Later packets are numbered after them.
func (f *Forwarder) Padding(n int) (first uint16, ts uint32, ok bool) {
	idle := f.paused || f.needSegment
	if !f.started || n <= 0 || !idle && !f.lastMarker {
		return 0, 0, false
	}
	f.keepSegment()
	first = uint16(f.lastOutExt + 1)
	f.lastOutExt += uint64(n)
	f.seqOffset -= uint64(n)
	f.segStart = f.highestIn + 1
	return first, f.lastOutTS, true
}

// RTPTimestamp translates an incoming timestamp into the current
// segment's outgoing space.
func (f *Forwarder) RTPTimestamp(in uint32) uint32 { return in - f.tsOffset }

// rtpTicks converts a duration into RTP clock ticks, modulo 2^32 as the
// RTP clock wraps (integer arithmetic: float-to-uint32 overflow is
// implementation-defined).
func rtpTicks(d time.Duration, clockRate uint32) uint32 {
	if d <= 0 {
		return 0
	}
	secs, rem := uint64(d/time.Second), uint64(d%time.Second)
	return uint32(secs*uint64(clockRate) + rem*uint64(clockRate)/uint64(time.Second))
}
