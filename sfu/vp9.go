package sfu

// parseVP9 reads a VP9 payload descriptor (RFC 9628 section 4.2) into d:
// the picture ID and TL0PICIDX where they sit (the same encodings as
// VP8's, so that writeVP8 rewrites them too), the temporal and spatial
// layer of the layer frame the packet belongs to, and, in a scalability
// structure, each spatial layer's picture size. False for a truncated
// descriptor.
//
// A VP9 picture of a scalable (SVC) stream is one layer frame per spatial
// layer, all in one RTP stream, sharing the picture ID and timestamp; B
// and E mark a layer frame's first and last packets, and the RTP marker
// the picture's last.
func parseVP9(p []byte, d *payloadDesc) bool {
	*d = payloadDesc{vp9: true}
	if len(p) < 1 {
		return false
	}
	b := p[0]
	d.interPic = b&0x40 != 0 // P
	flexible := b&0x10 != 0  // F
	d.layerStart = b&0x08 != 0
	d.layerEnd = b&0x04 != 0
	i := 1
	if b&0x80 != 0 { // I: picture ID
		if i = readPictureID(p, i, d); i < 0 {
			return false
		}
	}
	if b&0x20 != 0 { // L: TID, U, SID, D
		if len(p) <= i {
			return false
		}
		d.hasTID = true
		d.tid = p[i] >> 5
		d.sync = p[i]&0x10 != 0 // U: a switching-up point
		d.sid = (p[i] >> 1) & 0x07
		i++
		if !flexible {
			if len(p) <= i {
				return false
			}
			d.tl0At, d.tl0 = uint8(i), p[i]
			i++
		}
	}
	if flexible && d.interPic { // up to three P_DIFFs, N: another follows
		for n := 0; ; n++ {
			if len(p) <= i || n == 3 {
				return false
			}
			more := p[i]&0x01 != 0
			i++
			if !more {
				break
			}
		}
	}
	d.start = d.layerStart && d.sid == 0
	if b&0x02 != 0 { // V: scalability structure
		if len(p) <= i {
			return false
		}
		ns := int(p[i]>>5) + 1
		if p[i]&0x10 != 0 { // Y: each spatial layer's size
			i++
			if len(p) < i+4*ns {
				return false
			}
			for s := range min(ns, MaxLayers) {
				at := i + 4*s
				d.sizes[s] = uint32(p[at])<<24 | uint32(p[at+1])<<16 | uint32(p[at+2])<<8 | uint32(p[at+3])
			}
		}
		d.layerCount = uint8(ns)
	}
	return true
}
