package recorder

import (
	"bytes"
	"testing"
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
