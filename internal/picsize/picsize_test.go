package picsize

import (
	"encoding/hex"
	"testing"
)

// SPSs made by x264 (ffmpeg -f lavfi -i testsrc=size=WxH -pix_fmt yuv420p
// -c:v libx264 -profile:v baseline|high -f h264), with their emulation
// prevention bytes; 1080 lines are 1088 coded, cropped. (recorder/mkv's
// TestCodecSizes reads more, made by the encoders as it runs.)
func TestH264(t *testing.T) {
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
		if w, h, ok := H264(nal); !ok || w != tt.w || h != tt.h {
			t.Errorf("%s: %dx%d %v, want %dx%d", tt.sps, w, h, ok, tt.w, tt.h)
		}
		for cut := 1; cut < 8; cut++ {
			if _, _, ok := H264(nal[:cut]); ok {
				t.Errorf("%s cut at %d parses", tt.sps, cut)
			}
		}
	}
}

// Sequence header OBU payloads made by libaom (ffmpeg -f lavfi -i
// testsrc=size=WxH -frames 1 -c:v libaom-av1 -f obu; the still picture
// with -still-picture 1, a reduced header) and SVT-AV1 (libsvtav1).
func TestAV1(t *testing.T) {
	for _, tt := range []struct {
		seq  string
		w, h int
	}{
		{"200000043cfeccdaf92021a004", 320, 180},
		{"2000000cc4ff6736be48086801", 640, 360},
		{"2000002d4cffb3ccaf92021a0040", 1280, 720},
		{"00000042abbfc373efe401", 1920, 1080},
		{"396a67fd9ed2021a0040", 1280, 720},
	} {
		b, _ := hex.DecodeString(tt.seq)
		if w, h, ok := AV1(b); !ok || w != tt.w || h != tt.h {
			t.Errorf("%s: %dx%d %v, want %dx%d", tt.seq, w, h, ok, tt.w, tt.h)
		}
		for cut := 1; cut < 4; cut++ {
			if _, _, ok := AV1(b[:cut]); ok {
				t.Errorf("%s cut at %d parses", tt.seq, cut)
			}
		}
	}
}

// FuzzH264: any bytes, no panic, and a size only when positive.
func FuzzH264(f *testing.F) {
	nal, _ := hex.DecodeString("67640028acd940780227e5c044000003000400000300083c60c65800")
	f.Add(nal)
	f.Fuzz(func(t *testing.T, b []byte) {
		if w, h, ok := H264(b); ok && (w <= 0 || h <= 0) {
			t.Fatalf("% x: %dx%d", b, w, h)
		}
		VP8(b)
		VP9(b)
		if w, h, ok := AV1(b); ok && (w <= 0 || h <= 0) {
			t.Fatalf("% x: AV1 %dx%d", b, w, h)
		}
	})
}
