package sfu

import (
	"github.com/vclass/vclass/internal/obu"
	"github.com/vclass/vclass/internal/picsize"
)

// dependencyDescriptorURI is the RTP header extension that describes an
// AV1 stream's layers (the AV1 RTP specification's Dependency
// Descriptor): each packet names its frame's template, and a keyframe's
// first packet carries the templates (the structure), each of a spatial
// and temporal layer.
const dependencyDescriptorURI = "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension"

// ddStructure is what forwarding keeps of the last template dependency
// structure of a stream: each template's layers and the spatial layers'
// sizes.
type ddStructure struct {
	valid     bool
	idOffset  uint8
	templates uint8
	spatial   [64]uint8
	temporal  [64]uint8
	layers    uint8 // spatial layers
	sizes     [MaxLayers]uint32
}

// bitReader reads a dependency descriptor's fields, most significant bit
// first; reading past the end sets bad.
type bitReader struct {
	b   []byte
	pos int
	bad bool
}

func (r *bitReader) bits(n int) uint32 {
	var v uint32
	for range n {
		if r.pos >= 8*len(r.b) {
			r.bad = true
			return 0
		}
		v = v<<1 | uint32(r.b[r.pos/8]>>(7-r.pos%8))&1
		r.pos++
	}
	return v
}

// ns reads a non-symmetric unsigned value below n.
func (r *bitReader) ns(n uint32) uint32 {
	w := 0
	for x := n; x != 0; x >>= 1 {
		w++
	}
	m := uint32(1)<<w - n
	v := r.bits(w - 1)
	if v < m {
		return v
	}
	return v<<1 - m + r.bits(1)
}

// parseDD reads a dependency descriptor into d (the frame's start and end
// and its spatial and temporal layer), first taking in the structure it
// carries, if any, into s. False when it is malformed or names a template
// the structure does not have (a stream joined before its keyframe).
func parseDD(b []byte, s *ddStructure, d *payloadDesc) bool {
	*d = payloadDesc{av1: true, interPic: true}
	r := bitReader{b: b}
	d.layerStart = r.bits(1) == 1
	d.layerEnd = r.bits(1) == 1
	template := uint8(r.bits(6))
	r.bits(16)                        // frame number
	if len(b) > 3 && r.bits(1) == 1 { // a template dependency structure
		r.bits(4) // active decode targets, custom DTIs, fdiffs, chains
		if !readDDStructure(&r, s) {
			s.valid = false
			return false
		}
	}
	if r.bad || !s.valid {
		return false
	}
	i := (template + 64 - s.idOffset) % 64
	if i >= s.templates {
		return false
	}
	d.sid, d.tid, d.hasTID = s.spatial[i], s.temporal[i], true
	d.start = d.layerStart && d.sid == 0
	// libwebrtc's temporal structures never refer a frame to an earlier
	// one above the base layer across a base-layer frame: after one, any
	// higher layer may start.
	d.sync = d.tid == 0
	if d.start {
		d.layerCount = s.layers
		d.sizes = s.sizes
	}
	return true
}

// readDDStructure reads template_dependency_structure() into s.
func readDDStructure(r *bitReader, s *ddStructure) bool {
	*s = ddStructure{idOffset: uint8(r.bits(6))}
	targets := int(r.bits(5)) + 1
	spatial, temporal := uint8(0), uint8(0)
	for {
		if int(s.templates) == len(s.spatial) {
			return false
		}
		s.spatial[s.templates], s.temporal[s.templates] = spatial, temporal
		s.templates++
		next := r.bits(2)
		if r.bad || next == 3 {
			break
		}
		switch next {
		case 1:
			temporal++
		case 2:
			temporal, spatial = 0, spatial+1
		}
	}
	s.layers = spatial + 1
	n := int(s.templates)
	r.pos += 2 * n * targets // template DTIs
	for range n {            // template fdiffs
		for r.bits(1) == 1 && !r.bad {
			r.bits(4)
		}
	}
	chains := r.ns(uint32(targets) + 1)
	if chains > 0 {
		for range targets {
			r.ns(chains)
		}
		r.pos += 4 * n * int(chains)
	}
	if r.bits(1) == 1 { // render resolutions
		for sid := range int(s.layers) {
			w, h := r.bits(16)+1, r.bits(16)+1
			if sid < MaxLayers {
				s.sizes[sid] = w<<16 | h
			}
		}
	}
	if r.bad || r.pos > 8*len(r.b) {
		return false
	}
	s.valid = true
	return true
}

// av1KeyframeSize reads the largest picture size from the sequence header
// that the first packet of a coded video sequence carries (RTP payload
// format for AV1, section 4: an aggregation header, then OBU elements,
// each with a LEB128 length unless W says it is the last).
func av1KeyframeSize(p []byte) (width, height int, ok bool) {
	if len(p) < 2 || p[0]&0x80 != 0 { // Z: the first element goes on from the last packet
		return 0, 0, false
	}
	count := int(p[0]>>4) & 3 // W: how many elements, 0 = each has a length
	for i, n := 1, 0; i < len(p) && (count == 0 || n < count); n++ {
		size := len(p) - i
		if count == 0 || n < count-1 {
			v, l := obu.LEB128(p[i:])
			if l == 0 {
				return 0, 0, false
			}
			i, size = i+l, int(v)
		}
		if size <= 0 || size > len(p)-i {
			return 0, 0, false
		}
		unit := p[i : i+size]
		i += size
		hdr := 1
		if unit[0]&0x04 != 0 { // extension header
			hdr++
		}
		if unit[0]&0x02 != 0 { // a size field, though RTP leaves it out
			v, l := obu.LEB128(unit[min(hdr, len(unit)):])
			if l == 0 {
				return 0, 0, false
			}
			hdr += l
			if uint64(len(unit)-hdr) < v {
				return 0, 0, false // cut short
			}
			unit = unit[:hdr+int(v)]
		}
		if unit[0]>>3&0x0f == 1 && hdr <= len(unit) { // OBU_SEQUENCE_HEADER
			return picsize.AV1(unit[hdr:])
		}
	}
	return 0, 0, false
}
