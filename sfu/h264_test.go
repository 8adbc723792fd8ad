package sfu

import (
	"encoding/hex"
	"testing"
)

// SPSs made by x264 (ffmpeg -f lavfi -i testsrc=size=WxH -pix_fmt yuv420p
// -c:v libx264 -profile:v baseline|high -f h264), with their emulation
// prevention bytes; 1080 lines are 1088 coded, cropped.
func TestH264KeyframeSize(t *testing.T) {
	for _, tt := range []struct {
		sps  string
		w, h int
	}{
		{"6742c01fd9005005bb011000000300100000030020f183248000", 1280, 720},
		{"6742c00bd901419f9f011000000300100000030020f142a48000", 320, 180},
		{"6742c016d900a02ff97011000003000100000300020f162e4800", 640, 360},
		{"67640028acd940780227e5c044000003000400000300083c60c65800", 1920, 1080},
	} {
		nal, _ := hex.DecodeString(tt.sps)
		// In a STAP-A before a (pretend) IDR slice, as browsers send it.
		stap := append([]byte{24, 0, byte(len(nal))}, nal...)
		stap = append(stap, 0, 2, 0x65, 0x88)
		if w, h, ok := h264KeyframeSize(stap); !ok || w != tt.w || h != tt.h {
			t.Errorf("STAP-A %s: %dx%d %v", tt.sps, w, h, ok)
		}
	}
	if _, _, ok := h264KeyframeSize([]byte{0x65, 0x88}); ok {
		t.Error("an IDR slice without an SPS has a size")
	}
}

// FuzzH264SPS: any bytes, no panic, and a size only within bounds.
func FuzzH264SPS(f *testing.F) {
	nal, _ := hex.DecodeString("6742c01fd9005005bb011000000300100000030020f183248000")
	f.Add(nal)
	f.Fuzz(func(t *testing.T, b []byte) {
		if w, h, ok := h264KeyframeSize(b); ok && (w <= 0 || h <= 0 || w > 16384 || h > 16384) {
			t.Fatalf("% x: %dx%d", b, w, h)
		}
	})
}
