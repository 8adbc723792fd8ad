package sfu

// h264KeyframeSize reads the picture size from the sequence parameter set
// (SPS, NAL unit type 7) a keyframe packet carries, alone or in a STAP-A
// aggregate (as browsers send it, before the IDR slice).
func h264KeyframeSize(p []byte) (width, height int, ok bool) {
	if len(p) < 1 {
		return 0, 0, false
	}
	switch p[0] & 0x1f {
	case 7:
		return h264SPSSize(p)
	case 24: // STAP-A: 16-bit sizes followed by NAL units
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			i += 2
			if size == 0 || i+size > len(p) {
				return 0, 0, false
			}
			if p[i]&0x1f == 7 {
				return h264SPSSize(p[i : i+size])
			}
			i += size
		}
	}
	return 0, 0, false
}

// spsBufLen bounds the SPS read: the fields up to the picture size and
// cropping come well within it.
const spsBufLen = 64

// h264SPSSize reads the picture size of an SPS NAL unit (H.264 7.3.2.1.1):
// the coded size in macroblocks less the cropping. Scaling matrices (rare
// in real-time encoders) are not read: false.
func h264SPSSize(nal []byte) (width, height int, ok bool) {
	// Take out the emulation prevention bytes (00 00 03).
	var buf [spsBufLen]byte
	n, zeros := 0, 0
	for _, b := range nal[1:] {
		if n == len(buf) {
			break
		}
		if zeros >= 2 && b == 3 {
			zeros = 0
			continue
		}
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
		buf[n] = b
		n++
	}
	r := bitReader{b: buf[:n]}
	profile := r.bits(8)
	r.bits(16) // constraint flags, level
	r.ue()     // seq_parameter_set_id
	chroma := uint32(1)
	switch profile {
	case 100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135:
		if chroma = r.ue(); chroma == 3 {
			r.bits(1) // separate_colour_plane_flag
		}
		r.ue()              // bit_depth_luma_minus8
		r.ue()              // bit_depth_chroma_minus8
		r.bits(1)           // qpprime_y_zero_transform_bypass_flag
		if r.bits(1) == 1 { // seq_scaling_matrix_present_flag
			return 0, 0, false
		}
	}
	r.ue()          // log2_max_frame_num_minus4
	switch r.ue() { // pic_order_cnt_type
	case 0:
		r.ue() // log2_max_pic_order_cnt_lsb_minus4
	case 1:
		r.bits(1) // delta_pic_order_always_zero_flag
		r.ue()    // offset_for_non_ref_pic (se, same length)
		r.ue()    // offset_for_top_to_bottom_field
		for range min(r.ue(), 255) {
			r.ue()
		}
	}
	r.ue()    // max_num_ref_frames
	r.bits(1) // gaps_in_frame_num_value_allowed_flag
	wMBs := r.ue() + 1
	hUnits := r.ue() + 1
	frameMBsOnly := r.bits(1)
	if frameMBsOnly == 0 {
		r.bits(1) // mb_adaptive_frame_field_flag
	}
	r.bits(1) // direct_8x8_inference_flag
	var left, right, top, bottom uint32
	if r.bits(1) == 1 {
		left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
	}
	if r.bad {
		return 0, 0, false
	}
	cropX, cropY := uint32(1), 2-frameMBsOnly // 4:4:4 or monochrome
	if chroma == 1 || chroma == 2 {
		cropX = 2
	}
	if chroma == 1 {
		cropY *= 2
	}
	w := int(wMBs*16) - int((left+right)*cropX)
	h := int((2-frameMBsOnly)*hUnits*16) - int((top+bottom)*cropY)
	if w <= 0 || h <= 0 || w > 16384 || h > 16384 {
		return 0, 0, false
	}
	return w, h, true
}

// ue reads an unsigned Exp-Golomb value.
func (r *bitReader) ue() uint32 {
	zeros := 0
	for r.bits(1) == 0 {
		if r.bad || zeros == 31 {
			r.bad = true
			return 0
		}
		zeros++
	}
	return 1<<zeros - 1 + r.bits(zeros)
}
