package sfu

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// vp8Payload is a VP8 payload with a 15-bit picture ID, TL0PICIDX and TID
// as Chromium sends them (X, I with M, L, T set).
func vp8Payload(picID uint16, tl0, tid uint8, key bool) []byte {
	p := []byte{0x90, 0xe0, 0x80 | byte(picID>>8), byte(picID), tl0, tid << 6, 0x01, 0, 0}
	if key {
		p[6] = 0x00
	}
	return p
}

func TestParseVP8Descriptor(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		ok   bool
		want payloadDesc
	}{
		{"no extension", []byte{0x10, 0x00}, true, payloadDesc{start: true}},
		{"15-bit picture id, tl0, tid", vp8Payload(0x1234, 77, 2, false), true,
			payloadDesc{picIDAt: 2, picIDLen: 2, picID: 0x1234, tl0At: 4, tl0: 77, hasTID: true, tid: 2, start: true}},
		{"7-bit picture id", []byte{0x90, 0x80, 0x05, 0x01}, true, payloadDesc{picIDAt: 2, picIDLen: 1, picID: 5, start: true}},
		{"K only: no TID", []byte{0x90, 0x10, 0x1f, 0x01}, true, payloadDesc{start: true}},
		{"layer sync", []byte{0x90, 0x20, 0x60, 0x01}, true, payloadDesc{hasTID: true, tid: 1, sync: true, start: true}},
		{"not a frame's first packet", []byte{0x80, 0x20, 0x40, 0x01}, true, payloadDesc{hasTID: true, tid: 1}},
		{"a later partition", []byte{0x11, 0x01}, true, payloadDesc{}},
		{"truncated picture id", []byte{0x90, 0x80, 0x85}, false, payloadDesc{}},
		{"truncated extension", []byte{0x90}, false, payloadDesc{}},
		{"empty", nil, false, payloadDesc{}},
	}
	for _, tt := range tests {
		var d payloadDesc
		ok := parseVP8(tt.in, &d)
		if ok != tt.ok || (ok && d != tt.want) {
			t.Errorf("%s: parseVP8 = %v %+v, want %v %+v", tt.name, ok, d, tt.ok, tt.want)
		}
	}
	p := vp8Payload(0x7ffe, 255, 0, true)
	var d payloadDesc
	parseVP8(p, &d)
	writeVP8(p, &d, 3, 9)
	parseVP8(p, &d)
	if d.picID != 3 || d.tl0 != 9 || d.picIDLen != 2 {
		t.Errorf("after writeVP8: %+v, want picture id 3 (15 bits) and tl0 9", d)
	}
}

// A forwarder switches layers only at the target layer's keyframe, goes on
// with the current layer until then, and keeps sequence numbers, picture
// IDs and TL0PICIDX continuous across the switch.
func TestForwarderLayerSwitch(t *testing.T) {
	f := NewForwarder(90000, true)
	f.SetTarget(0)
	type pkt struct {
		layer    int8
		ext      uint64
		ts       uint32
		pic      uint16
		tl0      uint8
		key      bool
		fwd      bool
		seq      uint16
		outPic   uint16
		outTL0   uint8
		setAfter int8 // SetTarget after this packet when >= 0
	}
	at := time.Unix(1000, 0)
	steps := []pkt{
		{layer: 1, ext: 70000, ts: 500, pic: 900, tl0: 40, key: true, setAfter: -1}, // not the target
		{layer: 0, ext: 1<<16 + 0, ts: 100, pic: 10, tl0: 5, key: true, fwd: true, seq: 0, outPic: 10, outTL0: 5, setAfter: -1},
		{layer: 0, ext: 1<<16 + 1, ts: 3100, pic: 11, tl0: 6, fwd: true, seq: 1, outPic: 11, outTL0: 6, setAfter: 1},
		{layer: 1, ext: 70001, ts: 3500, pic: 901, tl0: 41, setAfter: -1},                                             // target, not a keyframe: wait
		{layer: 0, ext: 1<<16 + 2, ts: 6100, pic: 12, tl0: 7, fwd: true, seq: 2, outPic: 12, outTL0: 7, setAfter: -1}, // current goes on
		{layer: 1, ext: 70002, ts: 6500, pic: 902, tl0: 42, key: true, fwd: true, seq: 3, outPic: 13, outTL0: 8, setAfter: -1},
		{layer: 0, ext: 1<<16 + 3, ts: 9100, pic: 13, tl0: 8, setAfter: -1}, // the old layer: dropped
		{layer: 1, ext: 70003, ts: 9500, pic: 903, tl0: 43, fwd: true, seq: 4, outPic: 14, outTL0: 9, setAfter: 0},
		{layer: 0, ext: 1<<16 + 4, ts: 12100, pic: 14, tl0: 9, key: true, fwd: true, seq: 5, outPic: 15, outTL0: 10, setAfter: -1}, // back down
	}
	for i, s := range steps {
		desc := payloadDesc{picIDAt: 2, picIDLen: 2, picID: s.pic, tl0At: 4, tl0: s.tl0}
		at = at.Add(33 * time.Millisecond)
		d := f.Process(InPacket{ExtSeq: s.ext, Timestamp: s.ts, Keyframe: s.key, Arrival: at, Layer: s.layer, Desc: &desc})
		if d.Forward != s.fwd {
			t.Fatalf("step %d: forward %v, want %v (%+v)", i, d.Forward, s.fwd, d)
		}
		if s.fwd && (d.Seq != s.seq || d.PictureID != s.outPic || d.TL0PICIDX != s.outTL0) {
			t.Errorf("step %d: seq %d picture %d tl0 %d, want %d %d %d", i, d.Seq, d.PictureID, d.TL0PICIDX, s.seq, s.outPic, s.outTL0)
		}
		if s.setAfter >= 0 {
			f.SetTarget(s.setAfter)
		}
	}
}

// chooseLayer takes the largest live layer not above the cap, else the
// smallest live one.
func TestChooseLayer(t *testing.T) {
	tests := []struct {
		live uint8
		max  int8
		want int8
	}{
		{0b111, 2, 2}, {0b111, 1, 1}, {0b111, 0, 0},
		{0b011, 2, 1}, {0b101, 1, 0}, {0b100, 0, 2},
		{0b110, 0, 1}, {0, 2, -1},
	}
	for _, tt := range tests {
		if got := chooseLayer(tt.live, tt.max); got != tt.want {
			t.Errorf("chooseLayer(%03b, %d) = %d, want %d", tt.live, tt.max, got, tt.want)
		}
	}
}

// Layers of an up track come and go: down tracks follow the arriving ones
// within their cap, and a layer that stops sending is left.
func TestDownTrackFollowsArrivingLayers(t *testing.T) {
	up := makeUpTrack("up", testEngine(), vp8Codec, 0, []string{"l", "m", "h"}, func([]rtcp.Packet) error { return nil })
	d := NewDownTrack(up, "d", "s")
	if _, err := d.Bind(&trackContext{codecs: []webrtc.RTPCodecParameters{vp8Codec}, ssrc: 5000, writer: &recordingWriter{}}); err != nil {
		t.Fatal(err)
	}
	feed := func(l *upLayer, r *upReader, seq uint16) { l.handle(r, vp8Packet(seq, uint32(seq)*3000, true)) }
	low, _ := up.addLayer(0, "l", 1, nil)
	var rl, rm, rh upReader
	feed(low, &rl, 1)
	if cur, target := d.Layers(); cur != 0 || target != 0 {
		t.Fatalf("layers %d/%d with only the low layer, want 0/0", cur, target)
	}
	high, _ := up.addLayer(2, "h", 3, nil)
	feed(high, &rh, 1)
	if cur, target := d.Layers(); cur != 2 || target != 2 {
		t.Fatalf("layers %d/%d once the high layer sends keyframes, want 2/2", cur, target)
	}
	d.SetMaxLayer(1)
	mid, _ := up.addLayer(1, "m", 2, nil)
	feed(mid, &rm, 1)
	if cur, _ := d.Layers(); cur != 1 {
		t.Fatalf("layer %d capped at 1, want 1", cur)
	}
	// The middle layer stops: its last packet is now older than layerStale.
	mid.lastPacket.Store(time.Now().Add(-2 * layerStale).UnixNano())
	up.layersChanged()
	if _, target := d.Layers(); target != 0 {
		t.Errorf("target %d after the middle layer stopped, want 0", target)
	}
}

// The readers of a track's layers forward concurrently, also while a down
// track switches between them: each builds what it writes in its own
// packet (run with -race; a race here shows only in rare interleavings).
func TestLayerReadersForwardConcurrently(t *testing.T) {
	up := makeUpTrack("up", testEngine(), vp8Codec, 0, []string{"l", "h"}, func([]rtcp.Packet) error { return nil })
	low, _ := up.addLayer(0, "l", 1, nil)
	high, _ := up.addLayer(1, "h", 2, nil)
	d := NewDownTrack(up, "d", "s")
	w := &lockedWriter{}
	if _, err := d.Bind(&trackContext{codecs: []webrtc.RTPCodecParameters{vp8Codec}, ssrc: 5000, writer: w}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, l := range []*upLayer{low, high} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r upReader
			for i := range uint16(2000) {
				p := vp8Packet(i, uint32(i)*3000, i%10 == 0)
				p[12] = 0x90 // X: a descriptor with a picture ID to rewrite
				p[13], p[14] = 0x80, byte(i)
				l.handle(&r, p)
			}
		}()
	}
	for i := range 200 {
		d.SetMaxLayer(int8(i % 2))
	}
	wg.Wait()
	if w.n == 0 {
		t.Fatal("nothing forwarded")
	}
}

type lockedWriter struct {
	mu sync.Mutex
	n  int
}

func (w *lockedWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	return h.MarshalSize() + len(payload), nil
}

func (w *lockedWriter) Write(b []byte) (int, error) { return len(b), nil }

// A view is given the smallest layer that covers it, within 10 % in both
// sides; the largest when none does or a layer's size is not known.
func TestLayerForView(t *testing.T) {
	up := makeUpTrack("up", testEngine(), vp8Codec, 0, []string{"l", "m", "h"}, func([]rtcp.Packet) error { return nil })
	for i := range 3 {
		up.addLayer(int8(i), []string{"l", "m", "h"}[i], uint32(i+1), nil)
	}
	if got := up.layerFor(100, 100); got != MaxLayers-1 {
		t.Errorf("sizes not known: layer %d, want the largest", got)
	}
	for i := range 3 {
		up.layers[i].Load().size.Store(uint32(320<<i)<<16 | uint32(180<<i))
	}
	for _, tt := range []struct {
		w, h int
		want int8
	}{
		{0, 0, 0}, {320, 180, 0}, {350, 196, 0}, {360, 200, 1}, {640, 360, 1}, {700, 390, 1},
		{720, 200, 2}, {1280, 720, 2}, {1920, 1080, 2}, {180, 320, 1}, // portrait tile: the height decides
	} {
		if got := up.layerFor(tt.w, tt.h); got != tt.want {
			t.Errorf("view %dx%d: layer %d, want %d", tt.w, tt.h, got, tt.want)
		}
	}
}

// Dynacast: the layer wanted is the largest any down track's preference
// and view ask for, of those not paused or hidden.
func TestWantedLayer(t *testing.T) {
	up := makeUpTrack("up", testEngine(), vp8Codec, 0, []string{"l", "m", "h"}, func([]rtcp.Packet) error { return nil })
	for i := range 3 {
		l, _ := up.addLayer(int8(i), []string{"l", "m", "h"}[i], uint32(i+1), nil)
		l.size.Store(uint32(320<<i)<<16 | uint32(180<<i))
	}
	up.OnWantedLayer(func(int8) {})
	if got := up.wantedLayer(); got != -1 {
		t.Errorf("no subscriber: wanted %d, want -1", got)
	}
	a, b := NewDownTrack(up, "a", "s"), NewDownTrack(up, "b", "s")
	for _, d := range []*DownTrack{a, b} {
		if _, err := d.Bind(&trackContext{codecs: []webrtc.RTPCodecParameters{vp8Codec}, ssrc: 5000, writer: &recordingWriter{}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := up.wantedLayer(); got != 2 {
		t.Errorf("no view said: wanted %d, want 2", got)
	}
	for _, step := range []struct {
		what string
		do   func()
		want int8
	}{
		{"a small, b not said", func() { a.SetView(300, 170, false) }, 2},
		{"both small", func() { b.SetView(300, 170, false) }, 0},
		{"b middle", func() { b.SetView(600, 340, false) }, 1},
		{"b hidden", func() { b.SetView(600, 340, true) }, 0},
		{"b shown, but capped at 0", func() { b.SetView(600, 340, false); b.SetMaxLayer(0) }, 0},
		{"a paused", func() { a.Pause() }, 0},
		{"a large but paused", func() { a.SetView(1280, 720, false) }, 0},
		{"a resumed", func() { a.Resume() }, 2},
	} {
		step.do()
		if got := up.wantedLayer(); got != step.want {
			t.Errorf("%s: wanted %d, want %d", step.what, got, step.want)
		}
	}
}

// A layer that sends padding alone (a browser probing its link on a layer
// it stopped encoding) is not live: subscribers are not held waiting for
// its keyframe.
func TestPaddingKeepsNoLayerLive(t *testing.T) {
	up := testUpTrack("up", testEngine(), vp8Codec, 1111, 0, func([]rtcp.Packet) error { return nil })
	up.addLayer(1, "m", 2222, nil)
	r0, r1 := upReader{level: 127}, upReader{level: 127}
	up.layer(0).handle(&r0, vp8Packet(1, 3000, true))
	padding := make([]byte, 12+200)
	padding[0], padding[1] = 0xa0, 96 // version 2 with the padding bit
	binary.BigEndian.PutUint32(padding[8:], 2222)
	padding[len(padding)-1] = 200
	for seq := range uint16(5) {
		binary.BigEndian.PutUint16(padding[2:], seq)
		up.layer(1).handle(&r1, padding)
	}
	if live := up.LiveLayers(time.Now()); live != 1 {
		t.Errorf("live layers %b after padding on layer 1, want only layer 0", live)
	}
	up.layer(1).handle(&r1, vp8Packet(5, 3000, false))
	if live := up.LiveLayers(time.Now()); live != 3 {
		t.Errorf("live layers %b after media on layer 1, want both", live)
	}
}
