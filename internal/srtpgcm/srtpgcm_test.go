package srtpgcm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// What pion/srtp seals (the same master keys, as DTLS gives both sides),
// Open opens: across the sequence number's wrap, with header extensions,
// CSRCs and padding, late and out of order; it refuses a replay, a packet
// older than the window, a changed byte and a packet cut short, and a
// stream started at a rollover count other than the sender's.
func TestOpenWhatPionSeals(t *testing.T) {
	key, salt := bytes.Repeat([]byte{0x3c}, KeyLen), []byte("twelve bytes")
	seal, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOpener(key, salt)
	if err != nil {
		t.Fatal(err)
	}
	packet := func(seq uint16) ([]byte, []byte) {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 90, SSRC: 0xcafe,
			CSRC: []uint32{7}}, Payload: bytes.Repeat([]byte{byte(seq)}, 50+int(seq%7))}
		if seq%3 == 0 {
			_ = p.Header.SetExtension(1, []byte{byte(seq), 2})
		}
		if seq%5 == 0 {
			p.Header.Padding, p.PaddingSize = true, 4
		}
		plain, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		enc, err := seal.EncryptRTP(nil, plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		return plain, enc
	}
	var s Stream
	var sealed [][]byte
	var plains [][]byte
	for seq := uint16(65000); seq != 2000; seq++ { // across the wrap
		p, e := packet(seq)
		plains, sealed = append(plains, p), append(sealed, e)
	}
	open := func(i int) error {
		b := bytes.Clone(sealed[i])
		got, err := o.Open(&s, b, 0)
		if err == nil && !bytes.Equal(got, plains[i]) {
			t.Fatalf("packet %d opened to %x, want %x", i, got, plains[i])
		}
		return err
	}
	for i := range 600 {
		if i%10 == 5 {
			continue // late: below
		}
		if err := open(i); err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
	}
	for i := 5; i < 600; i += 10 {
		if i < 600-Window {
			if err := open(i); !errors.Is(err, ErrReplayed) {
				t.Fatalf("packet %d, %d behind: %v, want too old", i, 599-i, err)
			}
			continue
		}
		if err := open(i); err != nil {
			t.Fatalf("late packet %d: %v", i, err)
		}
	}
	if err := open(598); !errors.Is(err, ErrReplayed) {
		t.Errorf("a replay: %v", err)
	}
	for i := 600; i < len(sealed); i++ { // over the wrap
		if err := open(i); err != nil {
			t.Fatalf("packet %d (seq %d): %v", i, 65000+i, err)
		}
	}
	_, b := packet(2000) // not taken yet
	changed := bytes.Clone(b)
	changed[len(b)-20] ^= 1
	if _, err := o.Open(&s, changed, 0); err == nil || errors.Is(err, ErrReplayed) {
		t.Errorf("a changed byte: %v", err)
	}
	if _, err := o.Open(&s, bytes.Clone(b[:20]), 0); err == nil {
		t.Error("a packet cut short opened")
	}
	if _, err := o.Open(&s, b, 0); err != nil {
		t.Errorf("the packet as sealed, after a changed copy was refused: %v", err)
	}
	// A stream taken up at packet 1000 (after the wrap: rollover count 1).
	var late Stream
	if _, err := o.Open(&late, bytes.Clone(sealed[1000]), 0); err == nil {
		t.Error("opened with the wrong rollover count")
	}
	if _, err := o.Open(&late, bytes.Clone(sealed[1000]), 1); err != nil {
		t.Errorf("taken up at rollover count 1: %v", err)
	}
	if _, err := o.Open(&late, bytes.Clone(sealed[1001]), 0); err != nil {
		t.Errorf("the next packet: %v", err)
	}
	late.Reset()
	if _, err := o.Open(&late, bytes.Clone(sealed[1001]), 1); !errors.Is(err, ErrReplayed) {
		t.Errorf("a packet taken before Reset, again after it: %v", err)
	}
	if _, err := o.Open(&late, bytes.Clone(sealed[1002]), 1); err != nil {
		t.Errorf("after Reset: %v", err)
	}
	// An old packet replayed at a Reset is refused, and the stream goes on.
	late.Reset()
	if _, err := o.Open(&late, bytes.Clone(sealed[400]), 0); !errors.Is(err, ErrReplayed) {
		t.Errorf("an old packet replayed at a Reset: %v", err)
	}
	if _, err := o.Open(&late, bytes.Clone(sealed[1003]), 1); err != nil {
		t.Errorf("the stream after the replay: %v", err)
	}
	if _, err := o.Open(&late, bytes.Clone(sealed[1004]), 7); err != nil {
		t.Errorf("once taken up, the count given is not used: %v", err)
	}
}
