package sfu

import "time"

// Forwarder decides, for one subscriber track, which incoming packets go
// out and with which sequence number and timestamp. It is a pure state
// machine (no I/O, no locks): the down track calls it under its own lock.
//
// Outgoing numbering stays continuous across pauses and source switches:
// each run of forwarded packets is a segment with its own offsets, and a new
// segment continues where the previous one ended. Simulcast layer switching
// will start a segment on the new layer's keyframe in the same way.
type Forwarder struct {
	clockRate uint32
	video     bool

	started      bool // a segment has begun at least once
	paused       bool
	needSegment  bool // the next accepted packet starts a new segment
	waitKeyframe bool // video: drop until a keyframe starts the segment

	segStart  uint64 // first incoming extended seq of the current segment
	seqOffset uint64 // outExt = inExt - seqOffset
	tsOffset  uint32 // outTS = inTS - tsOffset

	highestIn   uint64 // highest incoming extended seq forwarded in this segment
	lastOutExt  uint64
	lastOutTS   uint32
	lastOutTime time.Time
}

// InPacket is what the forwarder needs to know of an incoming packet.
type InPacket struct {
	ExtSeq    uint64
	Timestamp uint32
	Keyframe  bool
	Arrival   time.Time
}

// Decision says what to do with one incoming packet.
type Decision struct {
	Forward         bool
	Seq             uint16
	Timestamp       uint32
	RequestKeyframe bool // ask the publisher for a keyframe (the caller throttles)
}

// NewForwarder makes a forwarder for a track with the given RTP clock rate.
// Video tracks start at a keyframe.
func NewForwarder(clockRate uint32, video bool) *Forwarder {
	return &Forwarder{clockRate: clockRate, video: video, needSegment: true, waitKeyframe: video}
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
	if f.needSegment {
		if f.started && p.ExtSeq <= f.highestIn {
			// Reordered or duplicated from before the pause: already sent or
			// dropped on purpose; starting the segment on it would jump back.
			return Decision{}
		}
		if f.waitKeyframe && !p.Keyframe {
			return Decision{RequestKeyframe: true}
		}
		f.startSegment(p)
	} else if p.ExtSeq < f.segStart {
		// A late packet from before this segment began: its number space is gone.
		return Decision{}
	}
	outExt := p.ExtSeq - f.seqOffset
	outTS := p.Timestamp - f.tsOffset
	if p.ExtSeq > f.highestIn {
		f.highestIn = p.ExtSeq
		f.lastOutExt = outExt
		f.lastOutTS = outTS
		f.lastOutTime = p.Arrival
	}
	return Decision{Forward: true, Seq: uint16(outExt), Timestamp: outTS}
}

func (f *Forwarder) startSegment(p InPacket) {
	f.needSegment = false
	f.waitKeyframe = false
	f.segStart = p.ExtSeq
	f.highestIn = p.ExtSeq
	if !f.started {
		// First segment: keep the publisher's numbering.
		f.started = true
		f.seqOffset = 0
		f.tsOffset = 0
		f.lastOutExt = p.ExtSeq
		f.lastOutTS = p.Timestamp
		f.lastOutTime = p.Arrival
		return
	}
	nextExt := f.lastOutExt + 1
	f.seqOffset = p.ExtSeq - nextExt
	ticks := max(1, rtpTicks(p.Arrival.Sub(f.lastOutTime), f.clockRate))
	f.tsOffset = p.Timestamp - (f.lastOutTS + ticks)
	f.lastOutExt = nextExt
	f.lastOutTS = p.Timestamp - f.tsOffset
	f.lastOutTime = p.Arrival
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
