package picsize

import (
	"encoding/hex"
	"testing"
)

// Headers the encoders made, with their sizes: H.264 SPSs by x264 (ffmpeg
// -f lavfi -i testsrc=size=WxH -pix_fmt yuv420p -c:v libx264 -profile:v
// baseline|high -f h264), with their emulation prevention bytes, 1080
// lines 1088 coded and cropped; AV1 sequence header OBU payloads by libaom
// (-c:v libaom-av1 -f obu; the still picture with -still-picture 1, a
// reduced header) and SVT-AV1 (libsvtav1). (recorder/mkv's TestCodecSizes
// reads more, made by the encoders as it runs.) A header cut short gives
// no size.
func TestSizes(t *testing.T) {
	for _, tt := range []struct {
		codec  string
		header string
		w, h   int
	}{
		{"H264", "6742c01fd9005005bb011000000300100000030020f183248000", 1280, 720},
		{"H264", "6742c00bd901419f9f011000000300100000030020f142a48000", 320, 180},
		{"H264", "6742c016d900a02ff97011000003000100000300020f162e4800", 640, 360},
		{"H264", "67640028acd940780227e5c044000003000400000300083c60c65800", 1920, 1080},
		{"AV1", "200000043cfeccdaf92021a004", 320, 180},
		{"AV1", "2000000cc4ff6736be48086801", 640, 360},
		{"AV1", "2000002d4cffb3ccaf92021a0040", 1280, 720},
		{"AV1", "00000042abbfc373efe401", 1920, 1080},
		{"AV1", "396a67fd9ed2021a0040", 1280, 720},
	} {
		parse := map[string]func([]byte) (int, int, bool){"H264": H264, "AV1": AV1}[tt.codec]
		b, _ := hex.DecodeString(tt.header)
		if w, h, ok := parse(b); !ok || w != tt.w || h != tt.h {
			t.Errorf("%s %s: %dx%d %v, want %dx%d", tt.codec, tt.header, w, h, ok, tt.w, tt.h)
		}
		// (An AV1 header tells the size in its first 5-8 bytes.)
		for cut := 1; cut < map[string]int{"H264": 8, "AV1": 4}[tt.codec]; cut++ {
			if _, _, ok := parse(b[:cut]); ok {
				t.Errorf("%s %s cut at %d parses", tt.codec, tt.header, cut)
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
