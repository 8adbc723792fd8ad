package recorder

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"
)

// A scalable VP9 picture keeps its largest layer: a picture that is not a
// key picture only the largest layer's frame; a key picture every layer's
// frame in a superframe, its base keyframe not shown.
func TestVP9Picture(t *testing.T) {
	a := &assembler{codec: "vp9", video: true}
	// Three frames of 3 bytes; the first begins like a profile 0 keyframe
	// (frame marker 2, show_existing_frame 0, frame_type 0, show_frame 1).
	frames := []byte{0x82, 1, 1, 0x86, 2, 2, 0x86, 3, 3}
	a.vp9Starts = []int{0, 3, 6}
	if got := a.vp9Picture(bytes.Clone(frames), false); !bytes.Equal(got, []byte{0x86, 3, 3}) {
		t.Errorf("inter picture: % x, want the last frame", got)
	}
	want := []byte{0x80, 1, 1, 0x86, 2, 2, 0x86, 3, 3, 0xda, 3, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 0xda}
	if got := a.vp9Picture(bytes.Clone(frames), true); !bytes.Equal(got, want) {
		t.Errorf("key picture:\n% x, want\n% x", got, want)
	}
	// Only a keyframe is hidden: another frame's header would read one bit more.
	inter := []byte{0x86}
	hideKeyframe(inter)
	if inter[0] != 0x86 {
		t.Errorf("an inter frame's header changed: %#x", inter[0])
	}
	// Profile 3 has a reserved bit before show_existing_frame.
	p3 := []byte{0xb1} // 10 1 1 0 0 0 1: profile 3, reserved 0, show_existing 0, key, show_frame 1
	hideKeyframe(p3)
	if p3[0] != 0xb0 {
		t.Errorf("profile 3 keyframe: %#x, want 0xb0", p3[0])
	}
}

// A scalable VP9 stream whose largest layer changes between key pictures
// (the server moved the recorder to a smaller layer) is not written on
// until the next key picture: that layer's frames refer to frames of it
// the file does not have.
func TestVP9LayerChangeWaitsForAKeyPicture(t *testing.T) {
	a := newAssembler("video/VP9")
	seq := uint16(0)
	// picture sends one packet per spatial layer 0..top (flexible mode,
	// B and E set; the first layer's frame a keyframe when key).
	picture := func(ts uint32, top uint8, key bool) (frame, bool, bool) {
		return vp9Layers(a, &seq, ts, 0, top, key)
	}
	if _, ok, _ := picture(1000, 2, true); !ok {
		t.Fatal("the key picture was not written")
	}
	if f, ok, _ := picture(4000, 2, false); !ok || len(f.data) != 1 {
		t.Fatalf("an inter picture at the same layer: %v % x, want its largest layer's frame", ok, f.data)
	}
	if _, ok, askKey := picture(7000, 1, false); ok || !askKey {
		t.Fatalf("an inter picture at a smaller layer was written (%v) or no keyframe asked for (%v)", ok, askKey)
	}
	if _, ok, _ := picture(10000, 1, false); ok {
		t.Fatal("written before the next key picture")
	}
	if _, ok, _ := picture(13000, 1, true); !ok {
		t.Fatal("the next key picture was not written")
	}
}

// vp9Layers gives one packet for each spatial layer from..top of a
// picture (flexible mode, B and E set), the marker on the last. In a key
// picture no frame is inter-picture predicted (P clear) and the base
// layer's is a keyframe.
func vp9Layers(a *assembler, seq *uint16, ts uint32, from, top uint8, key bool) (f frame, ok, askKey bool) {
	for sid := from; sid <= top; sid++ {
		desc := byte(0x2c)      // L, B, E
		frameByte := byte(0x86) // frame marker 2, profile 0, an inter frame, shown
		if !key {
			desc |= 0x40 // P: inter-picture predicted
		} else if sid == 0 {
			frameByte = 0x82 // a keyframe
		}
		*seq++
		payload := []byte{desc, sid << 1, 0, frameByte} // layer indices (TID 0, SID), TL0PICIDX; a frame byte
		p := outPacket{pkt: &packet{Packet: rtp.Packet{Header: rtp.Header{SequenceNumber: *seq, Timestamp: ts, Marker: sid == top}, Payload: payload}}}
		f, ok, askKey = a.add(p)
	}
	return f, ok, askKey
}

// Only a picture whose base layer's frame is a keyframe starts a scalable
// VP9 recording: not the larger layers of a key picture whose base was
// not received (they are predicted from it), nor a base frame that is not
// inter-picture predicted but is no keyframe (intra-only: it refreshes
// only some references). A key picture the server cut short at a smaller
// layer goes on with its larger layers, sent after that marker.
func TestVP9KeyPictures(t *testing.T) {
	a := newAssembler("video/VP9")
	seq := uint16(0)
	if _, ok, askKey := vp9Layers(a, &seq, 1000, 1, 2, true); ok || !askKey {
		t.Fatalf("a key picture without its base: written %v, keyframe asked for %v", ok, askKey)
	}
	seq++
	intraOnly := outPacket{pkt: &packet{Packet: rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: 4000, Marker: true}, Payload: []byte{0x2c, 0, 0, 0x86}}}}
	if _, ok, _ := a.add(intraOnly); ok {
		t.Fatal("a base frame that is no keyframe was written first")
	}
	if f, ok, _ := vp9Layers(a, &seq, 7000, 0, 0, true); !ok || !f.key {
		t.Fatalf("the keyframe at the base: written %v, key %v", ok, f.key)
	}
	f, ok, _ := vp9Layers(a, &seq, 7000, 1, 2, true)
	if !ok || len(f.data) != 2+10 {
		t.Fatalf("the rest of the key picture: written %v, % x; want both frames and an index", ok, f.data)
	}
	if f, ok, _ := vp9Layers(a, &seq, 10000, 0, 2, false); !ok || len(f.data) != 1 {
		t.Fatalf("the next picture: written %v, % x; want its largest layer", ok, f.data)
	}
}
