package sfu

import "github.com/vclass/vclass/internal/picsize"

// h264KeyframeSize reads the picture size from the sequence parameter set
// (SPS, NAL unit type 7) a keyframe packet carries, alone or in a STAP-A
// aggregate (as browsers send it, before the IDR slice).
func h264KeyframeSize(p []byte) (width, height int, ok bool) {
	if len(p) < 1 {
		return 0, 0, false
	}
	switch p[0] & 0x1f {
	case 7:
		return picsize.H264(p)
	case 24: // STAP-A: 16-bit sizes followed by NAL units
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if size == 0 || i+size > len(p) {
				return 0, 0, false
			}
			if p[i]&0x1f == 7 {
				return picsize.H264(p[i : i+size])
			}
			i += size
		}
	}
	return 0, 0, false
}
