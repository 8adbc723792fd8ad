package recorder

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// fuzzCodecs are the tracks the pipeline fuzz target plays, by the first
// byte of its input.
var fuzzCodecs = []struct {
	mime string
	rate uint32
}{
	{"video/VP8", 90000}, {"video/VP9", 90000}, {"video/H264", 90000},
	{"video/AV1", 90000}, {"audio/opus", 48000}, {"audio/PCMU", 8000},
}

// Operations of the pipeline fuzz target's script: one byte each, then
// its operands.
const (
	opPacket  = iota // flags, seq, ts, payload: a packet arrives
	opPump           // ms: time goes on, then the track is pumped as a tick does
	opWait           // tenths of a second: likewise, longer
	opReport         // ntp, rtp: a sender report
	opGarbage        // len, bytes: a datagram that may be no RTP at all
	opCount
)

// Packet flags of opPacket.
const (
	pfMarker     = 1 << iota
	pfSeqSame    // the last packet's number again
	pfSeqJump    // a signed 16-bit step follows
	pfTSStep     // the timestamp moves by a frame's time
	pfTSJump     // a signed 32-bit step follows
	pfLong       // the payload is a 1-byte length times 5
	pfSeqFar     // the number jumps by half the range
	pfArriveLate // it arrived a second before now (long reordered)
)

// script reads the fuzz target's operations.
type script struct{ b []byte }

func (s *script) byte() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *script) bytes(n int) []byte {
	n = min(n, len(s.b))
	b := s.b[:n]
	s.b = s.b[n:]
	return b
}

func (s *script) u16() uint16 { return uint16(s.byte())<<8 | uint16(s.byte()) }
func (s *script) u32() uint32 { return uint32(s.u16())<<16 | uint32(s.u16()) }

// pipelineScript writes a script: the seeds' packets, one after another
// (sequence numbers +1, the timestamps given), then a pump.
type pipelineScript []byte

func (p pipelineScript) packet(marker bool, tsStep uint32, payload []byte) pipelineScript {
	flags := byte(0)
	if marker {
		flags |= pfMarker
	}
	if tsStep != 0 {
		flags |= pfTSJump
	}
	p = append(p, opPacket, flags)
	if tsStep != 0 {
		p = binary.BigEndian.AppendUint32(p, tsStep)
	}
	return append(append(p, byte(len(payload))), payload...)
}

func (p pipelineScript) pump(ms byte) pipelineScript { return append(p, opPump, ms) }

// FuzzPipeline plays a track's packets, as any publisher may send them,
// through the recorder's path from the socket to the timeline: take (RTP
// parsing), the jitter buffer, the assembler and the clock, pumped as a
// session's tick does. Sequence numbers wrap, repeat, jump and come back;
// timestamps stand, step or leap; payloads are empty, cut or garbage.
// Whatever comes:
//   - nothing panics; after a pop the jitter buffer holds only packets
//     that arrived within its latency;
//   - packets leave it in order: each the one after the last, or marked as
//     following packets given up;
//   - a video frame out is not empty, and the first one, and the first
//     after a loss, is a keyframe; an audio frame is its packet's payload;
//   - frames are placed on the timeline at non-decreasing times, within
//     maxSkew (and audioLag) of when they arrived, or after the last one;
//   - a frame's bytes stay as they were while it waits to be written,
//     whatever becomes of the packet buffers it was made from;
//   - when the track ends, every packet held comes out.
func FuzzPipeline(f *testing.F) {
	vp8Key := func(first bool, b ...byte) []byte { // descriptor, then a keyframe's first byte
		if first {
			return append([]byte{0x10, 0x00}, b...)
		}
		return append([]byte{0x00}, b...)
	}
	vp8Delta := append([]byte{0x10, 0x01}, 7, 7)
	var vp8 pipelineScript
	vp8 = vp8.packet(false, 3000, vp8Key(true, 1, 2)).packet(true, 0, vp8Key(false, 3)).pump(20)
	for range 5 {
		vp8 = vp8.packet(true, 3000, vp8Delta).pump(33)
	}
	f.Add(byte(0), []byte(vp8))
	// Across the wrap and back into the hole, a duplicate, a hole given up.
	f.Add(byte(0), []byte{opPacket, pfMarker | pfSeqJump | pfTSStep, 0xff, 0xf0, 3, 0x10, 0, 1,
		opPacket, pfMarker | pfSeqJump | pfTSStep, 0, 0x20, 3, 0x10, 1, 2,
		opPacket, pfMarker | pfSeqJump | pfTSStep, 0xff, 0xf0, 3, 0x10, 0, 3,
		opPacket, pfMarker | pfSeqSame, 3, 0x10, 0, 3, opWait, 5, opPacket, pfMarker | pfTSStep, 3, 0x10, 0, 4, opPump, 10})
	// A VP9 key picture in three spatial layers, then an inter picture.
	var vp9 pipelineScript
	vp9 = vp9.packet(false, 3000, []byte{0x2c, 0 << 1, 0, 0x82, 1}).packet(false, 0, []byte{0x2c, 1 << 1, 0, 0x86, 2}).
		packet(true, 0, []byte{0x2c, 2 << 1, 0, 0x86, 3}).pump(20)
	vp9 = vp9.packet(false, 3000, []byte{0x6c, 0 << 1, 0, 0x86, 4}).packet(false, 0, []byte{0x6c, 1 << 1, 0, 0x86, 5}).
		packet(true, 0, []byte{0x6c, 2 << 1, 0, 0x86, 6}).pump(20)
	f.Add(byte(1), []byte(vp9))
	// H.264: SPS, PPS and an IDR slice in a STAP-A, then an IDR in FU-A.
	var h264 pipelineScript
	h264 = h264.packet(true, 3000, []byte{0x78, 0, 4, 0x67, 0x42, 0xc0, 0x1f, 0, 2, 0x68, 0xce, 0, 2, 0x65, 0x88}).pump(20)
	h264 = h264.packet(false, 3000, []byte{0x7c, 0x85, 1, 2}).packet(true, 0, []byte{0x7c, 0x45, 3}).pump(20)
	f.Add(byte(2), []byte(h264))
	// AV1: a new coded video sequence, a sequence header and a frame OBU
	// whose second half is in the next packet.
	var av1 pipelineScript
	av1 = av1.packet(false, 3000, []byte{0x68, 3, 0x08, 0x18, 0x40, 0x30, 1, 2}).packet(true, 0, []byte{0x90, 3, 4}).pump(20)
	f.Add(byte(3), []byte(av1))
	// Opus with a sender report, a timestamp leap back and an empty packet.
	var opus pipelineScript
	opus = append(opus, opReport, 0, 0, 0, 0, 0, 0, 3, 0xc0)
	opus = opus.packet(true, 960, []byte{0xfc, 1}).packet(true, 960, []byte{0xfc, 2}).pump(40)
	opus = opus.packet(true, 0x80000000, []byte{0xfc, 3}).packet(true, 960, nil).pump(200)
	f.Add(byte(4), []byte(opus))
	f.Add(byte(5), []byte{opGarbage, 3, 0x80, 0, 0, opPacket, pfLong | pfMarker, 255, opWait, 100})

	f.Fuzz(func(t *testing.T, codec byte, ops []byte) {
		if len(ops) > 4096 {
			return // a script that long says nothing a shorter one does not
		}
		runPipeline(t, codec, ops)
	})
}

// runPipeline plays a FuzzPipeline script.
func runPipeline(t *testing.T, codec byte, ops []byte) *pipelineRun {
	c := fuzzCodecs[int(codec)%len(fuzzCodecs)]
	p := newPipelineRun(t, c.mime, c.rate)
	s := &script{b: ops}
	for len(s.b) > 0 {
		switch s.byte() % opCount {
		case opPacket:
			p.packet(s)
		case opPump:
			p.now = p.now.Add(time.Duration(s.byte()) * time.Millisecond)
			p.pump(false)
		case opWait:
			p.now = p.now.Add(time.Duration(s.byte()) * 100 * time.Millisecond)
			p.pump(false)
		case opReport:
			ntp := time.Duration(int32(s.u32())) * time.Millisecond
			p.srs = append(p.srs, senderReport{ntp: 1000*time.Second + ntp, rtp: s.u32()})
		case opGarbage:
			p.track.take(s.bytes(int(s.byte())), p.now)
		}
	}
	p.pump(true)
	p.finish()
	return p
}

// pipelineRun is one run of FuzzPipeline: a track fed as a session's
// reading goroutine and ticks would, and what came out of it so far.
type pipelineRun struct {
	t     *testing.T
	track *track
	srs   []senderReport
	start time.Time
	now   time.Time

	seq     uint16
	rtpTS   uint32
	havePkt bool
	lastOut uint16
	outAny  bool
	wantKey bool
	frames  []keptFrame
	placed  int // of track.queue, checked so far
	lastAt  time.Duration
}

// keptFrame is a frame the assembler gave and a copy of its bytes then.
type keptFrame struct {
	data, copy []byte
}

func newPipelineRun(t *testing.T, mime string, rate uint32) *pipelineRun {
	start := time.Unix(1_800_000_000, 0)
	tr := &track{
		video: mime[:5] == "video",
		jb:    newJitterBuffer(jitterWait),
		asm:   newAssembler(mime),
		clock: trackClock{rate: rate, peer: &peerClock{}},
	}
	return &pipelineRun{t: t, track: tr, start: start, now: start.Add(time.Second), wantKey: true}
}

// packet reads opPacket's operands and hands the packet to take.
func (p *pipelineRun) packet(s *script) {
	flags := s.byte()
	switch {
	case flags&pfSeqSame != 0 && p.havePkt:
	case flags&pfSeqJump != 0:
		p.seq += s.u16()
	case flags&pfSeqFar != 0:
		p.seq += 0x8000
	default:
		p.seq++
	}
	switch {
	case flags&pfTSJump != 0:
		p.rtpTS += s.u32()
	case flags&pfTSStep != 0:
		p.rtpTS += p.track.clock.rate / 30
	}
	n := int(s.byte())
	if flags&pfLong != 0 {
		n *= 5
	}
	payload := s.bytes(n)
	if len(payload) < n { // the script ran out: a long payload of a pattern
		payload = bytes.Repeat([]byte{byte(n)}, n)
	}
	arrival := p.now
	if flags&pfArriveLate != 0 {
		arrival = arrival.Add(-time.Second)
	}
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: p.seq, Timestamp: p.rtpTS,
		Marker: flags&pfMarker != 0, SSRC: 1}, Payload: payload}
	raw, err := pkt.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	p.havePkt = true
	p.track.take(raw, arrival)
}

// pump is session.pump without its I/O (keyframe requests, files): the
// packets taken go through the jitter buffer and the assembler (the same
// track.flow) and are placed on the timeline; then the invariants are
// checked.
func (p *pipelineRun) pump(ended bool) {
	t, tr := p.t, p.track
	tr.mu.Lock()
	in := tr.in
	tr.in = nil
	tr.mu.Unlock()
	for _, sr := range p.srs {
		tr.clock.report(sr)
	}
	p.srs = p.srs[:0]
	due := p.now
	if ended {
		due = p.now.Add(time.Hour)
	}
	tr.flow(in, due, p.start, func(o outPacket, f frame, ok bool) {
		p.checkOrder(o)
		if tr.video && o.lost {
			p.wantKey = true
		}
		if ok {
			p.checkFrame(o, f)
		}
		// The packet goes back to the pool next, its bytes spoilt as the
		// next packet read into it would spoil them.
		for i := range o.pkt.buf {
			o.pkt.buf[i] = 0xa5
		}
	})
	for seq, e := range tr.jb.slots {
		if waited := due.Sub(e.arrival); waited >= tr.jb.latency {
			t.Fatalf("packet %d still held after a pop, %v after it arrived", uint16(seq), waited)
		}
	}
	if !tr.clock.anchored && len(tr.pending) > 0 {
		waited := p.now.Sub(tr.first)
		if ended {
			waited = srWait
		}
		if placed, _ := tr.clock.anchor(tr.pending, waited, true); placed {
			for _, f := range tr.pending {
				tr.place(f)
			}
			tr.pending = nil
		}
	}
	p.checkPlaced()
	if ended && len(tr.jb.slots) != 0 {
		t.Fatalf("the track ended with %d packets held in the jitter buffer", len(tr.jb.slots))
	}
}

// checkOrder: a packet out of the jitter buffer is the one after the last,
// unless it says packets were given up before it.
func (p *pipelineRun) checkOrder(o outPacket) {
	seq := o.pkt.SequenceNumber
	if p.outAny {
		if !o.lost && seq != p.lastOut+1 {
			p.t.Fatalf("packet %d came out after %d, not marked as after a loss", seq, p.lastOut)
		}
		if o.lost && seq == p.lastOut+1 {
			p.t.Fatalf("packet %d came out right after %d, marked as after a loss", seq, p.lastOut)
		}
	}
	p.lastOut, p.outAny = seq, true
}

func (p *pipelineRun) checkFrame(o outPacket, f frame) {
	t := p.t
	if p.track.video {
		if len(f.data) == 0 {
			t.Fatalf("an empty video frame at RTP time %d", f.rtpTS)
		}
		if p.wantKey && !f.key {
			t.Fatalf("the frame at RTP time %d, the first after a start or a loss, is no keyframe", f.rtpTS)
		}
		p.wantKey = false
	} else if f.rtpTS != o.pkt.Timestamp || !bytes.Equal(f.data, o.pkt.Payload) {
		t.Fatalf("audio frame at RTP time %d, % x, from a packet at %d, % x", f.rtpTS, f.data, o.pkt.Timestamp, o.pkt.Payload)
	}
	p.frames = append(p.frames, keptFrame{data: f.data, copy: bytes.Clone(f.data)})
}

// checkPlaced checks the frames placed since the last pump.
func (p *pipelineRun) checkPlaced() {
	t, tr := p.t, p.track
	latest := p.now.Sub(p.start)
	for i, q := range tr.queue[p.placed:] {
		if p.placed+i > 0 && q.at < p.lastAt {
			t.Fatalf("a frame placed at %v after one at %v", q.at, p.lastAt)
		}
		if q.at > latest+maxSkew+audioLag && (p.placed+i == 0 || q.at > p.lastAt) {
			t.Fatalf("a frame placed at %v, past what arrived by %v and maxSkew", q.at, latest)
		}
		p.lastAt = q.at
	}
	p.placed = len(tr.queue)
}

// finish checks that no frame's bytes changed after it came out.
func (p *pipelineRun) finish() {
	for i, f := range p.frames {
		if !bytes.Equal(f.data, f.copy) {
			p.t.Fatalf("frame %d changed after it came out:\n% x\nwas\n% x", i, f.data, f.copy)
		}
	}
}
