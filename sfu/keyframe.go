package sfu

import "strings"

// codecKind tells the forwarding path how to find keyframes in a payload.
type codecKind uint8

const (
	codecAudio codecKind = iota
	codecVP8
	codecVP9
	codecH264
	codecAV1
	codecOtherVideo
)

func codecKindOf(mimeType string) codecKind {
	switch strings.ToLower(mimeType) {
	case "video/vp8":
		return codecVP8
	case "video/vp9":
		return codecVP9
	case "video/h264":
		return codecH264
	case "video/av1":
		return codecAV1
	}
	if strings.HasPrefix(strings.ToLower(mimeType), "video/") {
		return codecOtherVideo
	}
	return codecAudio
}

// isKeyframe reports whether an RTP payload starts (or carries) a keyframe.
func isKeyframe(kind codecKind, payload []byte) bool {
	switch kind {
	case codecVP8:
		return vp8Keyframe(payload)
	case codecVP9:
		return vp9Keyframe(payload)
	case codecH264:
		return h264Keyframe(payload)
	case codecAV1:
		// Aggregation header bit N: the first packet of a new coded video sequence.
		return len(payload) > 0 && payload[0]&0x08 != 0
	}
	return false
}

// vp8Keyframe parses the VP8 payload descriptor (RFC 7741 section 4.2)
// and looks at the P bit of the first partition's header.
func vp8Keyframe(p []byte) bool {
	i := vp8FrameStart(p)
	return i >= 0 && p[i]&0x01 == 0
}

// vp8KeyframeSize reads the picture size from a keyframe's first packet
// (RFC 6386 section 9.1: a 3-byte frame tag, the start code 9d 01 2a,
// then 14-bit width and height).
func vp8KeyframeSize(p []byte) (width, height int, ok bool) {
	i := vp8FrameStart(p)
	if i < 0 || p[i]&0x01 != 0 || len(p) < i+10 || p[i+3] != 0x9d || p[i+4] != 0x01 || p[i+5] != 0x2a {
		return 0, 0, false
	}
	width = int(p[i+6]) | int(p[i+7]&0x3f)<<8
	height = int(p[i+8]) | int(p[i+9]&0x3f)<<8
	return width, height, width > 0 && height > 0
}

// vp8FrameStart is where the VP8 frame begins in p (after the payload
// descriptor) if p is the first packet of a frame, else -1.
func vp8FrameStart(p []byte) int {
	if len(p) < 1 {
		return -1
	}
	start := p[0]&0x10 != 0
	partID := p[0] & 0x07 // the R bit (0x08) must be ignored
	if !start || partID != 0 {
		return -1
	}
	i := 1
	if p[0]&0x80 != 0 { // X: extension byte follows
		if len(p) <= i {
			return -1
		}
		ext := p[i]
		i++
		if ext&0x80 != 0 { // I: picture id, 7 or 15 bits
			if len(p) <= i {
				return -1
			}
			if p[i]&0x80 != 0 {
				i++
			}
			i++
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K
			i++
		}
	}
	if len(p) <= i {
		return -1
	}
	return i
}

// vp9Keyframe: the start of a picture (B=1, spatial layer 0) that is not
// inter-predicted (P=0), in the flexible or non-flexible descriptor.
func vp9Keyframe(p []byte) bool {
	var d payloadDesc
	return parseVP9(p, &d) && d.start && !d.interPic
}

// h264Keyframe finds an IDR slice or an SPS in a single NAL unit,
// a STAP-A aggregate or the first fragment of an FU-A.
func h264Keyframe(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	switch nal := p[0] & 0x1f; nal {
	case 5, 7:
		return true
	case 24: // STAP-A: 16-bit sizes followed by NAL units
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if size == 0 || i+size > len(p) {
				return false
			}
			if t := p[i] & 0x1f; t == 5 || t == 7 {
				return true
			}
			i += size
		}
	case 28: // FU-A
		if len(p) < 2 {
			return false
		}
		startBit := p[1]&0x80 != 0
		return startBit && p[1]&0x1f == 5
	}
	return false
}
