package sfu

import (
	"encoding/hex"
	"testing"
)

// The SPS is found alone and in a STAP-A before the IDR slice, as browsers
// send it (the SPS itself is read by internal/picsize, tested there).
func TestH264KeyframeSize(t *testing.T) {
	nal, _ := hex.DecodeString("6742c00bd901419f9f011000000300100000030020f142a48000") // x264, 320x180
	stap := append([]byte{24, 0, byte(len(nal))}, nal...)
	stap = append(stap, 0, 2, 0x65, 0x88)
	for name, p := range map[string][]byte{"alone": nal, "STAP-A": stap} {
		if w, h, ok := h264KeyframeSize(p); !ok || w != 320 || h != 180 {
			t.Errorf("%s: %dx%d %v, want 320x180", name, w, h, ok)
		}
	}
	for _, p := range [][]byte{{0x65, 0x88}, stap[:10], {24, 0, 99, 0x67}} {
		if _, _, ok := h264KeyframeSize(p); ok {
			t.Errorf("% x has a size", p)
		}
	}
}

// FuzzH264KeyframeSize: any payload, no panic, and a size only within
// bounds.
func FuzzH264KeyframeSize(f *testing.F) {
	nal, _ := hex.DecodeString("6742c01fd9005005bb011000000300100000030020f183248000")
	f.Add(nal)
	f.Add(append([]byte{24, 0, byte(len(nal))}, nal...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if w, h, ok := h264KeyframeSize(b); ok && (w <= 0 || h <= 0) {
			t.Fatalf("% x: %dx%d", b, w, h)
		}
	})
}
