package sfu

import (
	"bytes"
	"testing"
)

// FuzzVP8Descriptor: any payload, no panic; a descriptor that parses
// points at bytes inside the payload, which hold the picture ID and
// TL0PICIDX it read; bytes after the descriptor change nothing; and
// writeVP8 changes those bytes alone, into what parses back as written.
func FuzzVP8Descriptor(f *testing.F) {
	for _, c := range kfVP8Cases() {
		f.Add(c.payload)
	}
	f.Add(vp8Payload(0x1234, 7, 2, true))
	f.Add([]byte{0x90, 0x80, 0x05})       // 7-bit picture ID
	f.Add([]byte{0x90, 0xe0, 0x81, 0x23}) // 15-bit picture ID, TL0PICIDX cut off
	f.Fuzz(func(t *testing.T, p []byte) {
		var d payloadDesc
		if !parseVP8(p, &d) {
			return
		}
		if d.vp9 || d.av1 || d.tid > 3 || d.sid != 0 {
			t.Fatalf("% x: %+v", p, d)
		}
		if want := p[0]&0x10 != 0 && p[0]&0x07 == 0; d.start != want {
			t.Fatalf("% x: start %v, want S=1 PID=0: %v", p, d.start, want)
		}
		checkDescriptor(t, p, &d, parseVP8)
	})
}

// FuzzVP9Descriptor is FuzzVP8Descriptor for VP9's descriptor, whose
// layers are also to be within their fields' range.
func FuzzVP9Descriptor(f *testing.F) {
	for _, c := range kfVP9Cases() {
		f.Add(c.payload)
	}
	f.Add([]byte{0xaa, 0x80, 0x01, 0x03, 0x07})                         // I L B, 15-bit picture ID, TL0PICIDX
	f.Add([]byte{0x8a, 0x05, 0x48, 0x01, 0x40, 0x00, 0xb4, 0x02, 0x80}) // I B V: a structure with sizes
	f.Add([]byte{0xd8, 0x05, 0x03, 0x03, 0x02})                         // flexible: P_DIFFs
	f.Fuzz(func(t *testing.T, p []byte) {
		var d payloadDesc
		if !parseVP9(p, &d) {
			return
		}
		if !d.vp9 || d.av1 || d.tid > 7 || d.sid > 7 || d.layerCount > 8 {
			t.Fatalf("% x: %+v", p, d)
		}
		if d.start != (d.layerStart && d.sid == 0) || d.interPic != (p[0]&0x40 != 0) {
			t.Fatalf("% x: start %v, inter-picture %v", p, d.start, d.interPic)
		}
		for s := int(d.layerCount); s < MaxLayers; s++ {
			if d.sizes[s] != 0 {
				t.Fatalf("% x: a size for spatial layer %d of %d", p, s, d.layerCount)
			}
		}
		checkDescriptor(t, p, &d, parseVP9)
	})
}

// checkDescriptor checks what VP8 and VP9 descriptors share: the fields
// forwarding rewrites.
func checkDescriptor(t *testing.T, p []byte, d *payloadDesc, parse func([]byte, *payloadDesc) bool) {
	t.Helper()
	if d.picIDLen != 0 {
		at := int(d.picIDAt)
		if d.picIDLen > 2 || at == 0 || at+int(d.picIDLen) > len(p) {
			t.Fatalf("% x: picture ID at %d, %d bytes", p, at, d.picIDLen)
		}
		want := uint16(p[at])
		if d.picIDLen == 2 {
			want = uint16(p[at]&0x7f)<<8 | uint16(p[at+1])
		}
		if p[at]&0x80 != 0 != (d.picIDLen == 2) || d.picID != want {
			t.Fatalf("% x: picture ID %d (%d bytes), the bytes say %d", p, d.picID, d.picIDLen, want)
		}
	}
	if at := int(d.tl0At); at != 0 && (at >= len(p) || d.tl0 != p[at] || d.picIDLen != 0 && at < int(d.picIDAt+d.picIDLen)) {
		t.Fatalf("% x: TL0PICIDX %d at %d", p, d.tl0, at)
	}
	var again payloadDesc
	if !parse(append(bytes.Clone(p), 0xff, 0x80, 0xff), &again) || again != *d {
		t.Fatalf("% x: bytes after the payload change its descriptor", p)
	}
	q := bytes.Clone(p)
	writeVP8(q, d, d.picID, d.tl0)
	if !bytes.Equal(p, q) {
		t.Fatalf("% x: writing back what was read gives % x", p, q)
	}
	picID, tl0 := ^d.picID, ^d.tl0
	writeVP8(q, d, picID, tl0)
	for i := range p {
		inPicID := d.picIDLen != 0 && i >= int(d.picIDAt) && i < int(d.picIDAt+d.picIDLen)
		if p[i] != q[i] && !inPicID && (d.tl0At == 0 || i != int(d.tl0At)) {
			t.Fatalf("% x: writeVP8 changed byte %d: % x", p, i, q)
		}
	}
	if !parse(q, &again) {
		t.Fatalf("% x: does not parse once rewritten: % x", p, q)
	}
	want := *d
	if d.picIDLen != 0 {
		want.picID = picID & d.picIDMask()
	}
	if d.tl0At != 0 {
		want.tl0 = tl0
	}
	if again != want {
		t.Fatalf("% x rewritten to % x: %+v, want %+v", p, q, again, want)
	}
}
