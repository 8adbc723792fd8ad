package sfu

import (
	"testing"
	"time"
)

// fuzzBytes hands out a fuzz input a byte at a time (zeros once it ends).
type fuzzBytes []byte

func (b *fuzzBytes) next() byte {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return c
}

// fwSent is what one outgoing sequence number went out as.
type fwSent struct {
	layer       int8
	in          uint64 // the incoming packet's extended number
	inTS, outTS uint32
	pic         uint16 // the picture ID sent (hasPic)
	inPic       uint16
	hasPic      bool
	padding     bool
}

// fwStream is one incoming layer of FuzzForwarder: what it sent, by
// extended sequence number, so that a duplicate or late packet is the
// same packet again.
type fwStream struct {
	high        uint64
	ts          uint32
	pic         uint16
	tl0         uint8
	sent        map[uint64]InPacket
	descs       map[uint64]*payloadDesc
	refOffset   uint32
	initialized bool
}

// fwFuzz drives a forwarder with a fuzz input and checks every decision.
type fwFuzz struct {
	t       *testing.T
	f       *Forwarder
	video   bool
	svc     bool
	b       fuzzBytes
	now     time.Time
	streams [MaxLayers]fwStream
	out     map[uint64]fwSent // by outgoing extended sequence number
	top     uint64            // the highest outgoing number
	started bool
	needKey bool // video: the next packet forwarded must be a keyframe
	want    uint8
}

// FuzzForwarder feeds a forwarder a stream of packets of up to three
// layers (in order, lost, late, duplicated; VP8-like descriptors with
// temporal layers, or one VP9-like scalable stream) mixed with layer
// targets, temporal caps, pauses, resumes, drops and padding, and checks
// after each step:
//   - nothing goes out while paused; video starts, resumes and changes
//     layer only at a keyframe;
//   - no outgoing number is given to two packets (or to a packet and
//     padding); numbers go back only for a late packet of the current
//     layer, by as much as the input went back; a new layer continues at
//     the next number, its timestamp after the last one sent; within a
//     layer neither numbers nor timestamps move further than the input's;
//   - padding takes the next numbers, with the last timestamp sent;
//   - a forwarded packet's temporal layer is within MaxTemporal, which
//     moves only at a frame's start and never above what was asked but
//     for a keyframe's layer; a scalable stream's spatial layer within
//     Layer;
//   - a NACK of a recent number maps to the packet sent under it (its
//     layer, sequence number, timestamp and picture ID), never padding.
func FuzzForwarder(f *testing.F) {
	f.Add(uint8(0), []byte{0, 1, 10, 0x01, 20, 0, 1, 10, 0x02, 20, 6, 0, 0, 1, 10, 0, 20, 6, 1, 0, 1, 10, 0x01, 20, 7, 3})
	f.Add(uint8(1), []byte{0, 1, 10, 0x89, 20, 1, 1, 10, 0x89, 20, 4, 1, 0, 1, 10, 0x18, 20, 5, 0, 0, 1, 10, 0x88, 20, 7, 2, 0, 0, 3, 0x8b, 5})
	f.Add(uint8(2), []byte{0, 1, 10, 0x89, 0x00, 20, 0, 1, 0, 0x08, 0x01, 1, 0, 1, 0, 0x0a, 0x02, 1, 4, 2, 0, 1, 30, 0x89, 0x00, 20, 0, 1, 0, 0x08, 0x01, 1})
	f.Fuzz(func(t *testing.T, mode uint8, ops []byte) {
		video := mode%3 != 0
		clock := uint32(48000)
		if video {
			clock = 90000
		}
		z := &fwFuzz{t: t, f: NewForwarder(clock, video), video: video, svc: mode%3 == 2, b: ops, now: fwT0,
			out: map[uint64]fwSent{}, needKey: video, want: AllTemporal}
		for i := range z.streams {
			z.streams[i] = fwStream{high: fwExtBase + uint64(i)*1000, ts: uint32(i) * 7777, sent: map[uint64]InPacket{},
				descs: map[uint64]*payloadDesc{}, refOffset: uint32(i) * 12345}
		}
		for step := 0; len(z.b) > 0 && step < 1000; step++ {
			switch op := z.b.next(); op % 8 {
			case 4:
				z.f.SetTarget(int8(z.b.next() % MaxLayers))
			case 5:
				z.want = min(z.b.next()%4, AllTemporal)
				z.f.SetMaxTemporal(z.want)
			case 6:
				z.control(z.b.next() % 3)
			case 7:
				z.padding(int(z.b.next() % 8))
			default:
				z.packet()
			}
			z.checkNacks()
		}
	})
}

// control pauses, resumes or drops until a keyframe.
func (z *fwFuzz) control(what byte) {
	switch what {
	case 0:
		z.f.Pause()
	case 1:
		if z.f.Paused() {
			z.needKey = z.video
		}
		z.f.Resume()
	case 2:
		if z.started && !z.f.Paused() {
			z.needKey = z.video
		}
		z.f.DropUntilKeyframe()
	}
}

// nextPacket makes the next packet of a layer from the input: the next
// one (after a loss, maybe), or one sent before again, or a late one.
func (z *fwFuzz) nextPacket() InPacket {
	layer := int8(0)
	if !z.svc {
		layer = int8(z.b.next() % MaxLayers)
	}
	s := &z.streams[layer]
	z.now = z.now.Add(time.Duration(z.b.next()) * time.Millisecond / 4)
	how := z.b.next()
	if how%4 == 3 && s.initialized { // again, or late
		ext := s.high - uint64(how>>2%8)
		if p, ok := s.sent[ext]; ok {
			p.Arrival = z.now
			return p
		}
	}
	s.initialized = true
	s.high += 1 + uint64(how>>6) // 0 to 3 lost
	flags, tsStep := z.b.next(), uint32(z.b.next())*300
	s.ts += tsStep
	p := InPacket{ExtSeq: s.high, Timestamp: s.ts, Arrival: z.now, Layer: layer, Keyframe: flags&0x01 != 0, Marker: flags&0x02 != 0,
		RefOK: flags&0x04 != 0}
	if p.RefOK {
		p.RefTS = p.Timestamp + s.refOffset
	}
	if z.video && flags&0x08 != 0 {
		if tsStep != 0 {
			s.pic++
		}
		d := &payloadDesc{picIDAt: 1, picIDLen: 2, picID: s.pic & 0x7fff, hasTID: true, tid: flags >> 4 & 3,
			sync: flags&0x40 != 0, start: flags&0x80 != 0 || p.Keyframe} // (a VP8 keyframe is a frame's start)
		if d.tid == 0 && tsStep != 0 {
			s.tl0++
		}
		d.tl0At, d.tl0 = 3, s.tl0
		if z.svc {
			x := z.b.next()
			d.vp9, d.sid = true, x%3
			d.layerStart, d.layerEnd, d.interPic = x&0x04 != 0, x&0x08 != 0, x&0x10 != 0
			d.start = d.layerStart && d.sid == 0
			p.Keyframe = d.start && !d.interPic
			if p.Keyframe {
				d.layerCount = 3
			}
			p.SVC = true
		}
		p.Desc = d
		s.descs[p.ExtSeq] = d
	}
	s.sent[p.ExtSeq] = p
	return p
}

func (z *fwFuzz) packet() {
	t := z.t
	p := z.nextPacket()
	paused := z.f.Paused()
	temporal := z.f.MaxTemporal()
	d := z.f.Process(p)
	if mt := z.f.MaxTemporal(); mt != temporal && (p.Desc == nil || !p.Desc.start || mt > z.want && !(p.Keyframe && mt == p.Desc.tid)) {
		t.Fatalf("packet %+v: MaxTemporal %d -> %d (%d asked)", p, temporal, mt, z.want)
	}
	if paused && d != (Decision{}) {
		t.Fatalf("paused, packet %+v: %+v", p, d)
	}
	if !d.Forward {
		return
	}
	last, hasLast := z.out[z.top]
	if z.video && !p.SVC && (z.needKey || hasLast && last.layer != p.Layer) && !p.Keyframe {
		t.Fatalf("packet %+v forwarded (%+v) where a keyframe must come first", p, d)
	}
	if z.video && p.SVC && z.needKey && !p.Keyframe {
		t.Fatalf("scalable packet %+v forwarded (%+v) where a keyframe must come first", p, d)
	}
	if p.Desc != nil && p.Desc.hasTID && p.Desc.tid > z.f.MaxTemporal() {
		t.Fatalf("packet %+v of temporal layer %d forwarded, max %d", p, p.Desc.tid, z.f.MaxTemporal())
	}
	if p.SVC && int8(p.Desc.sid) > z.f.Layer() {
		t.Fatalf("packet %+v of spatial layer %d forwarded, layer %d", p, p.Desc.sid, z.f.Layer())
	}
	ref := z.top
	if !z.started {
		ref = p.ExtSeq
	}
	out := extendNear(ref, d.Seq)
	sent := fwSent{layer: p.Layer, in: p.ExtSeq, inTS: p.Timestamp, outTS: d.Timestamp}
	if p.Desc != nil && p.Desc.picIDLen != 0 {
		sent.hasPic, sent.pic, sent.inPic = true, d.PictureID, p.Desc.picID
		if !d.RewriteVP8 {
			sent.pic = p.Desc.picID
		}
	}
	if prev, ok := z.out[out]; ok && (prev.padding || prev.layer != p.Layer || prev.in != p.ExtSeq) {
		t.Fatalf("packet %+v sent as %d, which went out before as %+v", p, out, prev)
	}
	switch {
	case !z.started:
		if out != p.ExtSeq || d.Timestamp != p.Timestamp {
			t.Fatalf("the first packet %+v went out as %d/%d, not in the publisher's numbering", p, out, d.Timestamp)
		}
	case out > z.top && last.layer != p.Layer:
		if out != z.top+1 || int32(d.Timestamp-last.outTS) <= 0 {
			t.Fatalf("packet %+v of a new layer: %d/%d after %d/%d", p, out, d.Timestamp, z.top, last.outTS)
		}
	case out > z.top:
		if out-z.top > p.ExtSeq-last.in || int32(d.Timestamp-last.outTS) < min(0, int32(p.Timestamp-last.inTS)) {
			t.Fatalf("packet %+v: %d/%d after %d/%d (in %d/%d)", p, out, d.Timestamp, z.top, last.outTS, last.in, last.inTS)
		}
	default:
		if last.padding || last.layer != p.Layer || last.in-p.ExtSeq != z.top-out {
			t.Fatalf("packet %+v went back to %d, after %d for %+v", p, out, z.top, last)
		}
	}
	z.out[out] = sent
	if !z.started || out > z.top {
		z.top = out
	}
	z.started, z.needKey = true, false
}

func (z *fwFuzz) padding(n int) {
	first, ts, ok := z.f.Padding(n)
	if !ok {
		return
	}
	if !z.started || n <= 0 {
		z.t.Fatalf("padding of %d given before anything was sent", n)
	}
	last := z.out[z.top]
	if first != uint16(z.top+1) || ts != last.outTS {
		z.t.Fatalf("padding of %d: first %d ts %d, after %d/%d", n, first, ts, z.top, last.outTS)
	}
	for range n {
		z.top++
		z.out[z.top] = fwSent{layer: last.layer, in: last.in, inTS: last.inTS, outTS: ts, padding: true}
	}
}

// checkNacks maps the last numbers sent back.
func (z *fwFuzz) checkNacks() {
	if !z.started {
		return
	}
	for back := range uint64(64) {
		s, ok := z.out[z.top-back]
		if !ok {
			continue
		}
		seq := uint16(z.top - back)
		nt, ok := z.f.MapNackTarget(seq)
		if !ok {
			continue
		}
		if s.padding || nt.InExt != s.in || nt.Layer != s.layer || s.inTS-nt.TSOffset != s.outTS ||
			s.hasPic && (s.inPic-nt.PicOffset)&0x7fff != s.pic {
			z.t.Fatalf("NACK of %d maps to %+v; it went out as %+v", seq, nt, s)
		}
	}
}
