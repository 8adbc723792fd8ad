package sfu

import (
	"bytes"
	"testing"

	"github.com/pion/rtp"
)

// extensionValue reads what pion/rtp reads, in either form, past padding
// and CSRCs, and nothing from a packet without extensions or cut short.
func TestExtensionValue(t *testing.T) {
	for _, profile := range []uint16{0xbede, 0x1000} {
		h := rtp.Header{Version: 2, SequenceNumber: 1, SSRC: 5, CSRC: []uint32{1, 2}, Extension: true, ExtensionProfile: profile}
		for id, v := range map[uint8][]byte{1: {0xaa}, 3: {1, 2}, 5: {9, 8, 7, 6, 5}} {
			if err := h.SetExtension(id, v); err != nil {
				t.Fatal(err)
			}
		}
		b, err := (&rtp.Packet{Header: h, Payload: []byte{1, 2, 3}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		for id := range uint8(7) {
			if got, want := extensionValue(b, id), h.GetExtension(id); !bytes.Equal(got, want) {
				t.Errorf("profile %#x, id %d: %x, want %x", profile, id, got, want)
			}
		}
		if got := extensionValue(b[:20], 3); got != nil {
			t.Errorf("profile %#x: %x from a packet cut short", profile, got)
		}
	}
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, SSRC: 5}, Payload: []byte{0x10, 0x20}}).Marshal()
	if got := extensionValue(b, 1); got != nil {
		t.Errorf("%x from a packet without extensions", got)
	}
}
