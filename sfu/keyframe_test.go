package sfu

import (
	"bytes"
	"testing"
)

func TestKeyframeCodecKindOf(t *testing.T) {
	tests := []struct {
		mime string
		want codecKind
	}{
		{"video/VP8", codecVP8},
		{"video/vp8", codecVP8},
		{"VIDEO/VP8", codecVP8},
		{"video/VP9", codecVP9},
		{"Video/vp9", codecVP9},
		{"video/H264", codecH264},
		{"video/h264", codecH264},
		{"video/AV1", codecAV1},
		{"video/av1", codecAV1},
		{"video/H265", codecOtherVideo},
		{"video/rtx", codecOtherVideo},
		{"VIDEO/ulpfec", codecOtherVideo},
		{"video/", codecOtherVideo},
		{"audio/opus", codecAudio},
		{"audio/PCMU", codecAudio},
		{"audio/vp8", codecAudio},
		{"application/x-foo", codecAudio},
		{"", codecAudio},
		{"vp8", codecAudio},
		{"video/vp8 ", codecOtherVideo}, // exact match only
	}
	for _, tt := range tests {
		t.Run(tt.mime, func(t *testing.T) {
			if got := codecKindOf(tt.mime); got != tt.want {
				t.Errorf("codecKindOf(%q) = %d, want %d", tt.mime, got, tt.want)
			}
		})
	}
}

// kfCase is one payload and the answer the RFC gives for it. bug, when
// set, names a known deviation of the implementation from that answer: the
// case is then skipped (not failed) while the deviation persists, so that it
// stays visible in -v output and starts passing once fixed.
type kfCase struct {
	name    string
	kind    codecKind
	payload []byte
	want    bool
	bug     string
}

// VP8 payload descriptor, RFC 7741 section 4.2:
//
//	     0 1 2 3 4 5 6 7
//	    +-+-+-+-+-+-+-+-+
//	    |X|R|N|S|R| PID | (REQUIRED)
//	    +-+-+-+-+-+-+-+-+
//	X:  |I|L|T|K| RSV   | (OPTIONAL)
//	    +-+-+-+-+-+-+-+-+
//	I:  |M| PictureID   | (OPTIONAL)
//	    +-+-+-+-+-+-+-+-+
//	    |   PictureID   | (OPTIONAL, present when M=1: 15-bit picture id)
//	    +-+-+-+-+-+-+-+-+
//	L:  |   TL0PICIDX   | (OPTIONAL)
//	    +-+-+-+-+-+-+-+-+
//	T/K:|TID|Y| KEYIDX  | (OPTIONAL, one octet when T or K is set)
//	    +-+-+-+-+-+-+-+-+
//
// followed by the VP8 payload header (RFC 7741 section 4.3), whose first
// octet is
//
//	|Size0|H| VER |P|
//
// where P (the least significant bit) is the inverse key frame flag:
// P=0 is a key frame. Key frames then carry the start code 9d 01 2a.
const (
	kfVP8X   = 0x80 // descriptor octet 0
	kfVP8R7  = 0x40 // reserved bit 6 of octet 0
	kfVP8N   = 0x20
	kfVP8S   = 0x10
	kfVP8R3  = 0x08 // reserved bit 3 of octet 0 (just above the 3-bit PID)
	kfVP8ExI = 0x80 // extension octet
	kfVP8ExL = 0x40
	kfVP8ExT = 0x20
	kfVP8ExK = 0x10
	kfVP8M   = 0x80 // picture id octet: 15-bit picture id follows

	// First octet of the VP8 payload header: Size0=5, H=1, VER=0 and P.
	kfVP8HdrKey   = 0xb0 // P=0
	kfVP8HdrInter = 0xb1 // P=1
)

// kfVP8Key and kfVP8Inter are the payload header and some frame data.
var (
	kfVP8Key   = []byte{kfVP8HdrKey, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01}
	kfVP8Inter = []byte{kfVP8HdrInter, 0x22, 0x00, 0x11, 0x22, 0x33}
)

func kfCat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func kfVP8Cases() []kfCase {
	return []kfCase{
		{name: "VP8 minimal key", payload: kfCat([]byte{kfVP8S}, kfVP8Key), want: true},
		{name: "VP8 minimal inter", payload: kfCat([]byte{kfVP8S}, kfVP8Inter), want: false},
		{name: "VP8 key without S bit (continuation)", payload: kfCat([]byte{0x00}, kfVP8Key), want: false},
		{name: "VP8 key in partition 1", payload: kfCat([]byte{kfVP8S | 1}, kfVP8Key), want: false},
		{name: "VP8 key in partition 7", payload: kfCat([]byte{kfVP8S | 7}, kfVP8Key), want: false},
		{name: "VP8 key with N bit", payload: kfCat([]byte{kfVP8N | kfVP8S}, kfVP8Key), want: true},
		{name: "VP8 key with reserved bit 6 set (ignored)", payload: kfCat([]byte{kfVP8R7 | kfVP8S}, kfVP8Key), want: true},
		{
			name:    "VP8 key with reserved bit 3 set (ignored)",
			payload: kfCat([]byte{kfVP8R3 | kfVP8S}, kfVP8Key),
			want:    true,
			bug: "vp8Keyframe masks the partition index with 0x0f instead of 0x07, " +
				"so the reserved R bit (RFC 7741: MUST be ignored by the receiver) makes PID look non-zero",
		},
		{name: "VP8 X with empty extension, key", payload: kfCat([]byte{kfVP8X | kfVP8S, 0x00}, kfVP8Key), want: true},
		{name: "VP8 X with empty extension, inter", payload: kfCat([]byte{kfVP8X | kfVP8S, 0x00}, kfVP8Inter), want: false},
		{name: "VP8 X with reserved extension bits, key", payload: kfCat([]byte{kfVP8X | kfVP8S, 0x0f}, kfVP8Key), want: true},
		// Extension fields are chosen with bit 0 opposite to P, so that a
		// parser that stops one octet early gives the wrong answer.
		{name: "VP8 I 7-bit picture id, key", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExI, 0x05}, kfVP8Key), want: true},
		{name: "VP8 I 7-bit picture id, inter", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExI, 0x06}, kfVP8Inter), want: false},
		{name: "VP8 I 15-bit picture id, key", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExI, kfVP8M | 0x12, 0x35}, kfVP8Key), want: true},
		{name: "VP8 I 15-bit picture id, inter", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExI, kfVP8M | 0x13, 0x34}, kfVP8Inter), want: false},
		{name: "VP8 I 15-bit picture id 0x7fff, key", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExI, 0xff, 0xff}, kfVP8Key), want: true},
		{name: "VP8 L, key", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExL, 0x01}, kfVP8Key), want: true},
		{name: "VP8 L, inter", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExL, 0x02}, kfVP8Inter), want: false},
		{name: "VP8 T, key", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExT, 0x41}, kfVP8Key), want: true},
		{name: "VP8 T, inter", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExT, 0x40}, kfVP8Inter), want: false},
		{name: "VP8 K, key", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExK, 0x01}, kfVP8Key), want: true},
		{name: "VP8 K, inter", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExK, 0x00}, kfVP8Inter), want: false},
		{name: "VP8 T and K share one octet, key", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExT | kfVP8ExK, 0x61}, kfVP8Key), want: true},
		{name: "VP8 T and K share one octet, inter", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExT | kfVP8ExK, 0x60}, kfVP8Inter), want: false},
		{name: "VP8 I7 L T K, key", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExI | kfVP8ExL | kfVP8ExT | kfVP8ExK, 0x7f, 0x03, 0x21}, kfVP8Key), want: true},
		{name: "VP8 I15 L T K, key", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExI | kfVP8ExL | kfVP8ExT | kfVP8ExK, kfVP8M | 0x01, 0x03, 0x05, 0x21}, kfVP8Key), want: true},
		{name: "VP8 I15 L T K, inter", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExI | kfVP8ExL | kfVP8ExT | kfVP8ExK, kfVP8M | 0x01, 0x02, 0x04, 0x20}, kfVP8Inter), want: false},
		{name: "VP8 I15 L, key", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExI | kfVP8ExL, kfVP8M, 0x01, 0x01}, kfVP8Key), want: true},
		{name: "VP8 I7 K, inter", payload: kfCat([]byte{kfVP8X | kfVP8S, kfVP8ExI | kfVP8ExK, 0x00, 0x00}, kfVP8Inter), want: false},
		{name: "VP8 all extensions, not start", payload: kfCat([]byte{kfVP8X, kfVP8ExI | kfVP8ExL | kfVP8ExT | kfVP8ExK, kfVP8M, 0x00, 0x00, 0x00}, kfVP8Key), want: false},
		{name: "VP8 all extensions, partition 2", payload: kfCat([]byte{kfVP8X | kfVP8S | 2, kfVP8ExI | kfVP8ExL | kfVP8ExT | kfVP8ExK, kfVP8M, 0x00, 0x00, 0x00}, kfVP8Key), want: false},
		// Truncated descriptors.
		{name: "VP8 empty", payload: []byte{}, want: false},
		{name: "VP8 nil", payload: nil, want: false},
		{name: "VP8 descriptor only", payload: []byte{kfVP8S}, want: false},
		{name: "VP8 X without extension octet", payload: []byte{kfVP8X | kfVP8S}, want: false},
		{name: "VP8 I without picture id", payload: []byte{kfVP8X | kfVP8S, kfVP8ExI}, want: false},
		{name: "VP8 I15 with one picture id octet", payload: []byte{kfVP8X | kfVP8S, kfVP8ExI, kfVP8M | 0x01}, want: false},
		{name: "VP8 I15 without payload header", payload: []byte{kfVP8X | kfVP8S, kfVP8ExI, kfVP8M, 0x00}, want: false},
		{name: "VP8 L without TL0PICIDX", payload: []byte{kfVP8X | kfVP8S, kfVP8ExL}, want: false},
		{name: "VP8 T without TID octet", payload: []byte{kfVP8X | kfVP8S, kfVP8ExT}, want: false},
		{name: "VP8 all extensions without payload header", payload: []byte{kfVP8X | kfVP8S, 0xf0, kfVP8M, 0x00, 0x00, 0x00}, want: false},
		// Payload header present but only its first octet: P is readable.
		{name: "VP8 payload header first octet only, key", payload: []byte{kfVP8X | kfVP8S, kfVP8ExI, 0x01, kfVP8HdrKey}, want: true},
	}
}

// VP9 payload descriptor (draft-ietf-payload-vp9, now RFC 9628 section 4.2),
// first octet:
//
//	 0 1 2 3 4 5 6 7
//	+-+-+-+-+-+-+-+-+
//	|I|P|L|F|B|E|V|Z|
//	+-+-+-+-+-+-+-+-+
//
// I: picture id present, P: inter-picture predicted, L: layer indices
// present, F: flexible mode, B: start of a frame, E: end of a frame,
// V: scalability structure present, Z: not a reference for upper layers.
const (
	kfVP9I = 0x80
	kfVP9P = 0x40
	kfVP9L = 0x20
	kfVP9F = 0x10
	kfVP9B = 0x08
	kfVP9E = 0x04
	kfVP9V = 0x02
	kfVP9Z = 0x01
)

func kfVP9Cases() []kfCase {
	return []kfCase{
		{name: "VP9 B only", payload: []byte{kfVP9B, 0x00}, want: true},
		{name: "VP9 B single octet", payload: []byte{kfVP9B}, want: true},
		// Non-flexible, 15-bit picture id (|M| PID | PID |), scalability structure.
		{name: "VP9 key I M-bit picture id, B E V", payload: []byte{kfVP9I | kfVP9B | kfVP9E | kfVP9V, 0x80 | 0x12, 0x34, 0x18, 0x01, 0x40, 0x00, 0xf0}, want: true},
		{name: "VP9 key 7-bit picture id", payload: []byte{kfVP9I | kfVP9B | kfVP9E, 0x05, 0x82, 0x49}, want: true},
		{name: "VP9 key flexible mode", payload: []byte{kfVP9I | kfVP9F | kfVP9B, 0x80, 0x01}, want: true},
		{name: "VP9 key with layer indices", payload: []byte{kfVP9I | kfVP9L | kfVP9B, 0x05, 0x00, 0x00}, want: true},
		{name: "VP9 key with Z", payload: []byte{kfVP9B | kfVP9Z, 0x00}, want: true},
		{name: "VP9 all bits but P, truncated (no picture ID)", payload: []byte{0xff &^ kfVP9P}, want: false},
		{name: "VP9 key of spatial layer 1 (SVC)", payload: []byte{kfVP9I | kfVP9L | kfVP9B, 0x05, 0x02, 0x00}, want: false},
		{name: "VP9 key of spatial layer 0 with scalability structure", payload: []byte{kfVP9I | kfVP9L | kfVP9B | kfVP9V, 0x05, 0x00, 0x00, 0x30, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68, 0xf0}, want: true},
		{name: "VP9 inter start", payload: []byte{kfVP9I | kfVP9P | kfVP9B | kfVP9E, 0x80, 0x13}, want: false},
		{name: "VP9 inter flexible start", payload: []byte{kfVP9I | kfVP9P | kfVP9F | kfVP9B, 0x80, 0x13, 0x02}, want: false},
		{name: "VP9 key continuation (B=0)", payload: []byte{kfVP9I | kfVP9E, 0x80, 0x12}, want: false},
		{name: "VP9 key middle packet (B=0 E=0)", payload: []byte{kfVP9I, 0x05}, want: false},
		{name: "VP9 inter continuation", payload: []byte{kfVP9I | kfVP9P, 0x05}, want: false},
		{name: "VP9 all bits", payload: []byte{0xff}, want: false},
		{name: "VP9 zero octet", payload: []byte{0x00}, want: false},
		{name: "VP9 empty", payload: []byte{}, want: false},
		{name: "VP9 nil", payload: nil, want: false},
	}
}

// H264 NAL unit header (RFC 6184 section 1.3):
//
//	+---------------+
//	|0|1|2|3|4|5|6|7|
//	+-+-+-+-+-+-+-+-+
//	|F|NRI|  Type   |
//	+---------------+
//
// Types: 1 non-IDR slice, 5 IDR slice, 6 SEI, 7 SPS, 8 PPS, 9 AUD,
// 24 STAP-A, 25 STAP-B, 26 MTAP16, 28 FU-A, 29 FU-B.
//
// STAP-A (section 5.7.1): the STAP-A NAL header, then for each unit a
// 16-bit big-endian NALU size and the NAL unit (with its own header).
//
// FU-A (section 5.8): FU indicator (F|NRI|28), then the FU header
//
//	|S|E|R|  Type   |
//
// with S the start of the fragmented NAL unit, E its end, Type the type
// of the fragmented NAL unit.
const (
	kfH264NonIDR = 0x41 // NRI=2 type 1
	kfH264IDR    = 0x65 // NRI=3 type 5
	kfH264SEI    = 0x06 // NRI=0 type 6
	kfH264SPS    = 0x67 // NRI=3 type 7
	kfH264PPS    = 0x68 // NRI=3 type 8
	kfH264AUD    = 0x09 // NRI=0 type 9
	kfH264STAPA  = 0x78 // NRI=3 type 24
	kfH264STAPB  = 0x79 // NRI=3 type 25
	kfH264MTAP16 = 0x7a // NRI=3 type 26
	kfH264FUA    = 0x7c // NRI=3 type 28
	kfH264FUB    = 0x7d // NRI=3 type 29
	kfFUS        = 0x80
	kfFUE        = 0x40
)

var (
	kfH264SPSUnit    = []byte{kfH264SPS, 0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40}
	kfH264PPSUnit    = []byte{kfH264PPS, 0xce, 0x3c, 0x80}
	kfH264IDRUnit    = []byte{kfH264IDR, 0x88, 0x84, 0x00, 0x33, 0xff}
	kfH264NonIDRUnit = []byte{kfH264NonIDR, 0x9a, 0x02, 0x04}
	kfH264SEIUnit    = []byte{kfH264SEI, 0x05, 0x02, 0x10, 0x80}
	kfH264AUDUnit    = []byte{kfH264AUD, 0xf0}
)

// kfStapA builds a STAP-A payload from NAL units.
func kfStapA(units ...[]byte) []byte {
	out := []byte{kfH264STAPA}
	for _, u := range units {
		out = append(out, byte(len(u)>>8), byte(len(u)))
		out = append(out, u...)
	}
	return out
}

func kfH264Cases() []kfCase {
	return []kfCase{
		// Single NAL unit packets.
		{name: "H264 single IDR", payload: kfH264IDRUnit, want: true},
		{name: "H264 single IDR NRI=1", payload: []byte{0x25, 0x88}, want: true},
		{name: "H264 single IDR header only", payload: []byte{kfH264IDR}, want: true},
		{name: "H264 single SPS", payload: kfH264SPSUnit, want: true},
		{name: "H264 single PPS", payload: kfH264PPSUnit, want: false},
		{name: "H264 single non-IDR", payload: kfH264NonIDRUnit, want: false},
		{name: "H264 single non-IDR NRI=0", payload: []byte{0x01, 0x9a}, want: false},
		{name: "H264 single SEI", payload: kfH264SEIUnit, want: false},
		{name: "H264 single AUD", payload: kfH264AUDUnit, want: false},
		{name: "H264 type 0", payload: []byte{0x00, 0x00}, want: false},
		{name: "H264 empty", payload: []byte{}, want: false},
		{name: "H264 nil", payload: nil, want: false},
		// STAP-A.
		{name: "H264 STAP-A SPS PPS IDR", payload: kfStapA(kfH264SPSUnit, kfH264PPSUnit, kfH264IDRUnit), want: true},
		{name: "H264 STAP-A SPS PPS", payload: kfStapA(kfH264SPSUnit, kfH264PPSUnit), want: true},
		{name: "H264 STAP-A SPS only", payload: kfStapA(kfH264SPSUnit), want: true},
		{name: "H264 STAP-A AUD then SPS", payload: kfStapA(kfH264AUDUnit, kfH264SPSUnit, kfH264PPSUnit), want: true},
		{name: "H264 STAP-A SEI then IDR", payload: kfStapA(kfH264SEIUnit, kfH264IDRUnit), want: true},
		{name: "H264 STAP-A PPS SEI AUD then IDR", payload: kfStapA(kfH264PPSUnit, kfH264SEIUnit, kfH264AUDUnit, kfH264IDRUnit), want: true},
		{name: "H264 STAP-A last unit one-octet IDR", payload: kfStapA(kfH264AUDUnit, []byte{kfH264IDR}), want: true},
		{name: "H264 STAP-A PPS only", payload: kfStapA(kfH264PPSUnit), want: false},
		{name: "H264 STAP-A SEI non-IDR", payload: kfStapA(kfH264SEIUnit, kfH264NonIDRUnit), want: false},
		{name: "H264 STAP-A header only", payload: []byte{kfH264STAPA}, want: false},
		{name: "H264 STAP-A one size octet", payload: []byte{kfH264STAPA, 0x00}, want: false},
		{name: "H264 STAP-A size without unit", payload: []byte{kfH264STAPA, 0x00, 0x01}, want: false},
		{name: "H264 STAP-A zero size", payload: []byte{kfH264STAPA, 0x00, 0x00, kfH264SPS, 0x42}, want: false},
		{name: "H264 STAP-A zero size after a non-key unit", payload: kfCat(kfStapA(kfH264AUDUnit), []byte{0x00, 0x00}, kfH264SPSUnit), want: false},
		{name: "H264 STAP-A size past the end", payload: []byte{kfH264STAPA, 0x00, 0x10, kfH264SPS, 0x42, 0xc0}, want: false},
		{name: "H264 STAP-A size 0xffff", payload: []byte{kfH264STAPA, 0xff, 0xff, kfH264IDR, 0x88}, want: false},
		{name: "H264 STAP-A second size past the end", payload: kfCat(kfStapA(kfH264PPSUnit), []byte{0x00, 0x20, kfH264IDR, 0x88}), want: false},
		{name: "H264 STAP-A trailing size octet", payload: kfCat(kfStapA(kfH264PPSUnit), []byte{0x00}), want: false},
		{name: "H264 STAP-A trailing size without unit", payload: kfCat(kfStapA(kfH264PPSUnit), []byte{0x00, 0x05}), want: false},
		// An SPS whose size field overruns is not trusted, but a key unit
		// before the malformed one has already been seen.
		{name: "H264 STAP-A SPS then overrunning size", payload: kfCat(kfStapA(kfH264SPSUnit), []byte{0x01, 0x00, kfH264PPS}), want: true},
		// FU-A.
		{name: "H264 FU-A IDR start", payload: []byte{kfH264FUA, kfFUS | 5, 0x88, 0x84}, want: true},
		{name: "H264 FU-A IDR start header only", payload: []byte{kfH264FUA, kfFUS | 5}, want: true},
		{name: "H264 FU-A IDR start NRI=1", payload: []byte{0x3c, kfFUS | 5, 0x88}, want: true},
		{name: "H264 FU-A IDR middle", payload: []byte{kfH264FUA, 5, 0x11}, want: false},
		{name: "H264 FU-A IDR end", payload: []byte{kfH264FUA, kfFUE | 5, 0x11}, want: false},
		{name: "H264 FU-A non-IDR start", payload: []byte{kfH264FUA, kfFUS | 1, 0x9a}, want: false},
		{name: "H264 FU-A non-IDR end", payload: []byte{kfH264FUA, kfFUE | 1, 0x9a}, want: false},
		{name: "H264 FU-A indicator only", payload: []byte{kfH264FUA}, want: false},
		// Other aggregation and fragmentation types are not parsed.
		{name: "H264 STAP-B", payload: []byte{kfH264STAPB, 0x00, 0x01, 0x00, 0x07, kfH264SPS, 0x42, 0xc0, 0x1f, 0x8c, 0x8d, 0x40}, want: false},
		{name: "H264 MTAP16", payload: []byte{kfH264MTAP16, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, kfH264IDR, 0x88}, want: false},
		{name: "H264 FU-B", payload: []byte{kfH264FUB, kfFUS | 5, 0x00, 0x01, 0x88}, want: false},
	}
}

// AV1 aggregation header (AV1 RTP payload format section 4.4):
//
//	|Z|Y| W |N|-|-|-|
//
// N: the first packet of a new coded video sequence.
func kfAV1Cases() []kfCase {
	return []kfCase{
		{name: "AV1 N", payload: []byte{0x08, 0x0a, 0x00}, want: true},
		{name: "AV1 N with W=1", payload: []byte{0x18, 0x0a, 0x0b}, want: true},
		{name: "AV1 N single octet", payload: []byte{0x08}, want: true},
		{name: "AV1 all bits", payload: []byte{0xff}, want: true},
		{name: "AV1 all bits but N", payload: []byte{0xf7, 0x32}, want: false},
		{name: "AV1 W=1", payload: []byte{0x10, 0x32}, want: false},
		{name: "AV1 Z Y", payload: []byte{0xc0, 0x32}, want: false},
		{name: "AV1 zero", payload: []byte{0x00}, want: false},
		{name: "AV1 empty", payload: []byte{}, want: false},
		{name: "AV1 nil", payload: nil, want: false},
	}
}

func kfAllCases() []kfCase {
	var cases []kfCase
	add := func(kind codecKind, cs []kfCase) {
		for _, c := range cs {
			c.kind = kind
			cases = append(cases, c)
		}
	}
	add(codecVP8, kfVP8Cases())
	add(codecVP9, kfVP9Cases())
	add(codecH264, kfH264Cases())
	add(codecAV1, kfAV1Cases())
	// Kinds without keyframe detection: nothing is a keyframe.
	for _, kind := range []codecKind{codecAudio, codecOtherVideo, 200} {
		for _, p := range [][]byte{nil, {}, {0x00}, {0xff}, kfCat([]byte{kfVP8S}, kfVP8Key), kfH264IDRUnit, {kfVP9B}, {0x08}} {
			cases = append(cases, kfCase{name: "no detection", kind: kind, payload: p, want: false})
		}
	}
	return cases
}

func TestKeyframe(t *testing.T) {
	for _, tt := range kfAllCases() {
		t.Run(tt.name, func(t *testing.T) {
			orig := bytes.Clone(tt.payload)
			got := isKeyframe(tt.kind, tt.payload)
			if !bytes.Equal(orig, tt.payload) {
				t.Fatalf("isKeyframe modified its payload: % x -> % x", orig, tt.payload)
			}
			if got == tt.want {
				if tt.bug != "" {
					t.Logf("known bug appears fixed: %s", tt.bug)
				}
				return
			}
			msg := "isKeyframe(kind %d, % x) = %v, want %v"
			if tt.bug != "" {
				t.Errorf(""+msg+": %s", tt.kind, tt.payload, got, tt.want, tt.bug)
			}
			t.Errorf(msg, tt.kind, tt.payload, got, tt.want)
		})
	}
}

// TestKeyframeTruncated cuts every test payload at every length (and
// appends garbage) and checks that nothing panics and that a VP8 payload
// cut before its payload header is never a keyframe.
func TestKeyframeTruncated(t *testing.T) {
	for _, tt := range kfAllCases() {
		for n := 0; n <= len(tt.payload); n++ {
			p := bytes.Clone(tt.payload[:n])
			got := kfCall(t, tt.kind, p)
			// Well-formed VP8 keyframes: no keyframe until the payload
			// header's first octet (which holds P) is in.
			if tt.kind == codecVP8 && tt.want && got && n <= kfVP8HeaderOffset(tt.payload) {
				t.Errorf("%s cut to %d octets (% x): keyframe without a payload header", tt.name, n, p)
			}
			// Also hand the function a slice whose capacity goes past its
			// length: reading past len must not happen either (the race
			// detector and bounds checks would not catch it otherwise).
			padded := append(bytes.Clone(p), 0xff, 0xff, 0xff, 0xff)[:n]
			if got2 := kfCall(t, tt.kind, padded); got2 != got {
				t.Errorf("%s cut to %d octets: result depends on bytes past len(payload)", tt.name, n)
			}
			padded0 := append(bytes.Clone(p), 0x00, 0x00, 0x00, 0x00)[:n]
			if got3 := kfCall(t, tt.kind, padded0); got3 != got {
				t.Errorf("%s cut to %d octets: result depends on bytes past len(payload)", tt.name, n)
			}
		}
	}
}

// kfVP8HeaderOffset is the offset of the VP8 payload header after the
// descriptor of a well-formed p, computed independently of vp8Keyframe.
func kfVP8HeaderOffset(p []byte) int {
	i := 1
	if p[0]&kfVP8X == 0 {
		return i
	}
	ext := p[1]
	i = 2
	if ext&kfVP8ExI != 0 {
		if p[i]&kfVP8M != 0 {
			i += 2
		} else {
			i++
		}
	}
	if ext&kfVP8ExL != 0 {
		i++
	}
	if ext&(kfVP8ExT|kfVP8ExK) != 0 {
		i++
	}
	return i
}

func kfCall(t *testing.T, kind codecKind, p []byte) (got bool) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("isKeyframe(kind %d, % x) panicked: %v", kind, p, r)
		}
	}()
	return isKeyframe(kind, p)
}

// TestKeyframeAllShortPayloads tries every payload of up to two octets, and
// every three-octet payload starting like a STAP-A, an FU-A or a VP8
// descriptor with extensions, for every kind: none may panic.
func TestKeyframeAllShortPayloads(t *testing.T) {
	kinds := []codecKind{codecAudio, codecVP8, codecVP9, codecH264, codecAV1, codecOtherVideo}
	var cur []byte
	var curKind codecKind
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("isKeyframe(kind %d, % x) panicked: %v", curKind, cur, r)
		}
	}()
	buf := make([]byte, 3)
	try := func(kind codecKind, p []byte) {
		cur, curKind = p, kind
		isKeyframe(kind, p)
	}
	for _, kind := range kinds {
		try(kind, nil)
		for a := range 256 {
			buf[0] = byte(a)
			try(kind, buf[:1])
			for b := range 256 {
				buf[1] = byte(b)
				try(kind, buf[:2])
			}
		}
		for _, first := range []byte{kfH264STAPA, kfH264FUA, kfVP8X | kfVP8S, kfVP8X | kfVP8S | kfVP8R3} {
			buf[0] = first
			for b := range 256 {
				buf[1] = byte(b)
				for c := range 256 {
					buf[2] = byte(c)
					try(kind, buf[:3])
				}
			}
		}
	}
}

// FuzzKeyframe checks that isKeyframe never panics, whatever the codec kind
// and payload, never modifies the payload, and never reads past its length.
//
//	go test -run '^$' -fuzz FuzzKeyframe ./sfu/
func FuzzKeyframe(f *testing.F) {
	for _, c := range kfAllCases() {
		f.Add(uint8(c.kind), c.payload)
	}
	f.Fuzz(func(t *testing.T, kind uint8, payload []byte) {
		orig := bytes.Clone(payload)
		// Every kind, including the one the fuzzer picked (which may be out of range).
		kinds := []codecKind{codecKind(kind), codecAudio, codecVP8, codecVP9, codecH264, codecAV1, codecOtherVideo}
		for _, k := range kinds {
			got := isKeyframe(k, payload)
			if !bytes.Equal(orig, payload) {
				t.Fatalf("isKeyframe(kind %d) modified its payload", k)
			}
			// Bytes past len(payload) must not matter.
			ext := append(bytes.Clone(payload), 0xff, 0x00, 0xff)[:len(payload)]
			if isKeyframe(k, ext) != got {
				t.Fatalf("isKeyframe(kind %d, % x) depends on bytes past the payload", k, payload)
			}
			switch k {
			case codecAudio, codecOtherVideo:
				if got {
					t.Fatalf("isKeyframe(kind %d, % x) = true for a kind without detection", k, payload)
				}
			case codecAV1:
				if want := len(payload) > 0 && payload[0]&0x08 != 0; got != want {
					t.Fatalf("AV1 % x: got %v, want N bit %v", payload, got, want)
				}
				if w, h, ok := av1KeyframeSize(payload); ok && (w <= 0 || h <= 0) {
					t.Fatalf("AV1 % x: size %dx%d", payload, w, h)
				}
			case codecVP9:
				// A keyframe starts a picture (B, and spatial layer 0 where
				// the descriptor names one) that refers to no other (P=0).
				if got && payload[0]&(kfVP9P|kfVP9B) != kfVP9B {
					t.Fatalf("VP9 % x: a keyframe without B=1 P=0", payload)
				}
				if simple := len(payload) > 0 && payload[0]&(kfVP9I|kfVP9P|kfVP9L|kfVP9F|kfVP9B|kfVP9V) == kfVP9B; simple && !got {
					t.Fatalf("VP9 % x: B=1 P=0 and nothing else: not a keyframe", payload)
				}
			case codecVP8:
				// A keyframe is always the start of partition 0.
				if got && (payload[0]&kfVP8S == 0 || payload[0]&0x07 != 0) {
					t.Fatalf("VP8 % x: keyframe without S=1 PID=0", payload)
				}
			}
		}
	})
}

// A keyframe's picture size is read after any payload descriptor: libvpx's
// first bytes of a 320x180 keyframe (ffmpeg -f lavfi -i testsrc=size=320x180
// -frames:v 1 -c:v libvpx), and the 640x480 one above; not from an inter
// frame, a later packet of the frame or a truncated header.
func TestVP8KeyframeSize(t *testing.T) {
	libvpx := []byte{0x30, 0x55, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00, 0x00, 0x47, 0x08}
	for _, tt := range []struct {
		name    string
		payload []byte
		w, h    int
		ok      bool
	}{
		{"libvpx, short descriptor", kfCat([]byte{0x10}, libvpx), 320, 180, true},
		{"libvpx, 15-bit picture id, TL0PICIDX, TID", kfCat([]byte{0x90, 0xe0, 0x81, 0x23, 0x07, 0x40}, libvpx), 320, 180, true},
		{"640x480", kfCat([]byte{kfVP8S}, kfVP8Key), 640, 480, true},
		{"inter frame", kfCat([]byte{kfVP8S}, kfVP8Inter), 0, 0, false},
		{"not the frame's first packet", kfCat([]byte{0x00}, libvpx), 0, 0, false},
		{"truncated", kfCat([]byte{0x10}, libvpx[:8]), 0, 0, false},
	} {
		w, h, ok := vp8KeyframeSize(tt.payload)
		if w != tt.w || h != tt.h || ok != tt.ok {
			t.Errorf("%s: %dx%d %v, want %dx%d %v", tt.name, w, h, ok, tt.w, tt.h, tt.ok)
		}
	}
}
