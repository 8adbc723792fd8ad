package sfu

// payloadDesc is what forwarding needs of a VP8 (RFC 7741 section 4.2)
// or VP9 (RFC 9628 section 4.2) payload descriptor: the picture ID and
// TL0PICIDX, which a subscriber's decoder follows across frames and which
// must therefore stay continuous when the forwarder switches between
// simulcast layers (each an encoder of its own, with its own numbering),
// and the temporal layer; of VP9, also the spatial layer (SVC).
type payloadDesc struct {
	picIDAt  uint8 // offset of the picture ID in the payload; 0 = absent
	picIDLen uint8 // 1 (7 bits) or 2 (15 bits)
	picID    uint16
	tl0At    uint8 // offset of TL0PICIDX; 0 = absent
	tl0      uint8
	hasTID   bool
	tid      uint8
	// sync: VP8's Y, this frame depends only on base-layer frames; VP9's
	// U, frames of higher temporal layers after this picture depend on
	// none before it.
	sync  bool
	start bool // the first packet of a frame (VP8: S set, partition 0; VP9: of the picture's first layer frame)

	// VP9 and AV1 (from its dependency descriptor) only.
	vp9, av1             bool
	sid                  uint8 // spatial layer
	interPic             bool  // P: the layer frame refers to earlier pictures
	layerStart, layerEnd bool  // B, E: the layer frame's first and last packets
	layerCount           uint8 // spatial layers in the scalability structure, 0 = none in this packet
	sizes                [MaxLayers]uint32
}

// scalable reports whether d is of a codec whose temporal layers work as
// VP9's (switching up after a picture), not VP8's (at a sync frame).
func (d *payloadDesc) scalable() bool { return d.vp9 || d.av1 }

// parseVP8 reads p's descriptor into d; false for a truncated one.
func parseVP8(p []byte, d *payloadDesc) bool {
	*d = payloadDesc{}
	if len(p) < 1 {
		return false
	}
	d.start = p[0]&0x10 != 0 && p[0]&0x07 == 0
	if p[0]&0x80 == 0 { // X: no extension byte
		return true
	}
	if len(p) < 2 {
		return false
	}
	ext := p[1]
	i := 2
	if ext&0x80 != 0 { // I: picture ID
		if i = readPictureID(p, i, d); i < 0 {
			return false
		}
	}
	if ext&0x40 != 0 { // L: TL0PICIDX
		if len(p) <= i {
			return false
		}
		d.tl0At, d.tl0 = uint8(i), p[i]
		i++
	}
	if ext&0x30 != 0 { // T or K: TID, Y, KEYIDX
		if len(p) <= i {
			return false
		}
		if ext&0x20 != 0 {
			d.hasTID = true
			d.tid = p[i] >> 6
			d.sync = p[i]&0x20 != 0
		}
	}
	return true
}

// readPictureID reads the picture ID at p[i:] (M set: 15 bits, else 7;
// VP8 and VP9 write it alike) into d; the index after it, -1 when p ends
// first.
func readPictureID(p []byte, i int, d *payloadDesc) int {
	if len(p) <= i || p[i]&0x80 != 0 && len(p) <= i+1 {
		return -1
	}
	d.picIDAt = uint8(i)
	if p[i]&0x80 != 0 {
		d.picIDLen, d.picID = 2, uint16(p[i]&0x7f)<<8|uint16(p[i+1])
		return i + 2
	}
	d.picIDLen, d.picID = 1, uint16(p[i])
	return i + 1
}

// picIDMask is the largest picture ID of a descriptor's width.
func (d *payloadDesc) picIDMask() uint16 {
	if d.picIDLen == 1 {
		return 0x7f
	}
	return 0x7fff
}

// writeVP8 puts a picture ID and TL0PICIDX into a payload whose descriptor
// is d (they keep their width).
func writeVP8(p []byte, d *payloadDesc, picID uint16, tl0 uint8) {
	switch d.picIDLen {
	case 1:
		p[d.picIDAt] = byte(picID & 0x7f)
	case 2:
		p[d.picIDAt] = 0x80 | byte(picID>>8)&0x7f
		p[d.picIDAt+1] = byte(picID)
	}
	if d.tl0At != 0 {
		p[d.tl0At] = tl0
	}
}
