// Package picsize reads the picture size from the headers of video
// keyframes (VP8, VP9) and H.264 sequence parameter sets: what the
// recorder writes into its files and the SFU sizes layers by.
package picsize

import "encoding/binary"

// VP8 reads the picture size of a VP8 keyframe.
func VP8(frame []byte) (w, h int, ok bool) {
	if len(frame) < 10 || frame[0]&1 != 0 || frame[3] != 0x9d || frame[4] != 0x01 || frame[5] != 0x2a {
		return 0, 0, false
	}
	w = int(binary.LittleEndian.Uint16(frame[6:]) & 0x3fff)
	h = int(binary.LittleEndian.Uint16(frame[8:]) & 0x3fff)
	return w, h, w > 0 && h > 0
}

// bitReader reads big-endian bit fields and Exp-Golomb codes.
type bitReader struct {
	b   []byte
	pos int
	err bool
}

func (r *bitReader) bit() uint32 {
	if r.pos >= 8*len(r.b) {
		r.err = true
		return 0
	}
	v := uint32(r.b[r.pos/8]>>(7-r.pos%8)) & 1
	r.pos++
	return v
}

func (r *bitReader) bits(n int) uint32 {
	var v uint32
	for range n {
		v = v<<1 | r.bit()
	}
	return v
}

func (r *bitReader) ue() uint32 {
	zeros := 0
	for r.bit() == 0 {
		if r.err || zeros > 31 {
			r.err = true
			return 0
		}
		zeros++
	}
	return (1<<zeros - 1) + r.bits(zeros)
}

func (r *bitReader) se() int32 {
	v := r.ue()
	if v&1 == 1 {
		return int32(v+1) / 2
	}
	return -int32(v / 2)
}

// VP9 reads the picture size of a VP9 keyframe (its uncompressed
// header).
func VP9(frame []byte) (w, h int, ok bool) {
	r := &bitReader{b: frame}
	if r.bits(2) != 2 { // frame marker
		return 0, 0, false
	}
	profile := r.bit() | r.bit()<<1
	if profile == 3 {
		r.bit()
	}
	if r.bit() == 1 { // show_existing_frame
		return 0, 0, false
	}
	if r.bit() != 0 { // frame_type: 0 is a keyframe
		return 0, 0, false
	}
	r.bits(2) // show_frame, error_resilient_mode
	if r.bits(24) != 0x498342 {
		return 0, 0, false
	}
	if profile >= 2 {
		r.bit() // ten_or_twelve_bit
	}
	if r.bits(3) != 7 { // color_space != CS_RGB
		r.bit() // color_range
		if profile == 1 || profile == 3 {
			r.bits(3) // subsampling_x, subsampling_y, reserved_zero
		}
	} else if profile == 1 || profile == 3 {
		r.bit()
	}
	w = int(r.bits(16)) + 1
	h = int(r.bits(16)) + 1
	return w, h, !r.err
}

// H264 reads the picture size an H.264 sequence parameter set (the
// NAL unit, header byte included) gives.
func H264(sps []byte) (w, h int, ok bool) {
	if len(sps) < 4 || sps[0]&0x1f != 7 {
		return 0, 0, false
	}
	r := &bitReader{b: unescapeRBSP(sps[1:])}
	profile := r.bits(8)
	r.bits(16) // constraint flags, level
	r.ue()     // seq_parameter_set_id
	chroma := uint32(1)
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		chroma = r.ue()
		if chroma == 3 {
			r.bit()
		}
		r.ue() // bit depth luma
		r.ue() // bit depth chroma
		r.bit()
		if r.bit() == 1 { // seq_scaling_matrix_present
			n := 8
			if chroma == 3 {
				n = 12
			}
			for i := range n {
				if r.bit() == 1 {
					size := 16
					if i >= 6 {
						size = 64
					}
					last, next := int32(8), int32(8)
					for range size {
						if next != 0 {
							next = (last + r.se() + 256) % 256
						}
						if next != 0 {
							last = next
						}
					}
				}
			}
		}
	}
	r.ue() // log2_max_frame_num
	switch r.ue() {
	case 0:
		r.ue()
	case 1:
		r.bit()
		r.se()
		r.se()
		for n := r.ue(); n > 0 && !r.err; n-- {
			r.se()
		}
	}
	r.ue()  // max_num_ref_frames
	r.bit() // gaps_in_frame_num_allowed
	wMbs := int(r.ue()) + 1
	hMapUnits := int(r.ue()) + 1
	frameMbsOnly := int(r.bit())
	if frameMbsOnly == 0 {
		r.bit()
	}
	r.bit() // direct_8x8_inference
	w, h = wMbs*16, (2-frameMbsOnly)*hMapUnits*16
	if r.bit() == 1 { // frame_cropping
		cl, cr, ct, cb := int(r.ue()), int(r.ue()), int(r.ue()), int(r.ue())
		cx, cy := 2, 2*(2-frameMbsOnly)
		if chroma == 0 || chroma == 3 {
			cx, cy = 1, 2-frameMbsOnly
		}
		if chroma == 2 {
			cy = 2 - frameMbsOnly
		}
		w -= (cl + cr) * cx
		h -= (ct + cb) * cy
	}
	return w, h, !r.err && w > 0 && h > 0
}

func unescapeRBSP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	zeros := 0
	for _, c := range b {
		if zeros >= 2 && c == 3 {
			zeros = 0
			continue
		}
		if c == 0 {
			zeros++
		} else {
			zeros = 0
		}
		out = append(out, c)
	}
	return out
}
