// Package picsize reads the picture size from the headers of video
// keyframes (VP8, VP9), H.264 sequence parameter sets and AV1 sequence
// headers: what the recorder writes into its files and the SFU sizes
// layers by.
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

// AV1 reads the largest picture size of an AV1 sequence header OBU's
// payload (AV1 specification section 5.5: max_frame_width_minus_1 and
// max_frame_height_minus_1, after the timing, decoder model and
// operating point fields).
func AV1(seq []byte) (w, h int, ok bool) {
	r := bitReader{b: seq}
	r.bits(3) // seq_profile
	r.bit()   // still_picture
	if reduced := r.bit(); reduced == 1 {
		r.bits(5) // seq_level_idx[0]
	} else {
		decoderModel, delayLength := false, 0
		if timing := r.bit(); timing == 1 {
			r.bits(32) // num_units_in_display_tick
			r.bits(32) // time_scale
			if equal := r.bit(); equal == 1 {
				r.uvlc() // num_ticks_per_picture_minus_1
			}
			if r.bit() == 1 { // decoder_model_info_present_flag
				decoderModel = true
				delayLength = int(r.bits(5)) + 1
				r.bits(32) // num_units_in_decoding_tick
				r.bits(5)  // buffer_removal_time_length_minus_1
				r.bits(5)  // frame_presentation_time_length_minus_1
			}
		}
		displayDelay := r.bit() == 1
		points := int(r.bits(5)) + 1
		for range points {
			r.bits(12) // operating_point_idc
			if level := r.bits(5); level > 7 {
				r.bit() // seq_tier
			}
			if decoderModel && r.bit() == 1 { // decoder_model_present_for_this_op
				r.bits(delayLength) // decoder_buffer_delay
				r.bits(delayLength) // encoder_buffer_delay
				r.bit()             // low_delay_mode_flag
			}
			if displayDelay && r.bit() == 1 {
				r.bits(4) // initial_display_delay_minus_1
			}
			if r.err {
				return 0, 0, false
			}
		}
	}
	wBits, hBits := int(r.bits(4))+1, int(r.bits(4))+1
	w, h = int(r.bits(wBits))+1, int(r.bits(hBits))+1
	return w, h, !r.err
}

// uvlc reads AV1's variable length unsigned number (section 4.10.3).
func (r *bitReader) uvlc() uint32 {
	zeros := 0
	for r.bit() == 0 {
		if r.err {
			return 0
		}
		zeros++
	}
	if zeros >= 32 {
		return 1<<32 - 1
	}
	return r.bits(zeros) + (1<<zeros - 1)
}
