// Package srtpgcm opens SRTP packets protected with AEAD_AES_128_GCM (RFC
// 7714), keeping each stream's rollover count and replay window where the
// caller keeps the rest of what it knows of the stream: a receiver of many
// streams then touches one place per packet, not a map and three
// structures of a general SRTP context.
package srtpgcm

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
)

// Sizes of AEAD_AES_128_GCM's keys (RFC 7714 section 12).
const (
	KeyLen  = 16
	SaltLen = 12
	tagLen  = 16
)

// Window is how far back a packet may be and still be taken, once.
const Window = 512

var (
	errShort    = errors.New("srtpgcm: packet too short")
	errAuth     = errors.New("srtpgcm: authentication failed")
	ErrReplayed = errors.New("srtpgcm: packet replayed or too old")
	errKeyLen   = errors.New("srtpgcm: master key or salt of the wrong length")
)

// Opener opens the SRTP packets of one direction of a transport.
type Opener struct {
	aead cipher.AEAD
	salt [SaltLen]byte
}

// NewOpener derives the session key and salt from the master key and salt
// (the AES-CM key derivation of RFC 3711 section 4.3, key derivation rate
// 0, as RFC 7714 section 11 has it).
func NewOpener(masterKey, masterSalt []byte) (*Opener, error) {
	if len(masterKey) != KeyLen || len(masterSalt) != SaltLen {
		return nil, errKeyLen
	}
	block, err := aes.NewCipher(masterKey)
	if err != nil {
		return nil, err
	}
	var key [KeyLen]byte
	var o Opener
	derive(block, masterSalt, 0x00, key[:]) // the SRTP encryption key
	derive(block, masterSalt, 0x02, o.salt[:])
	session, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	if o.aead, err = cipher.NewGCM(session); err != nil {
		return nil, err
	}
	return &o, nil
}

// derive fills out with the AES-CM PRF's keystream for label: the counter
// block is the master salt (padded to 14 bytes) with the label XORed into
// its eighth byte (the 48-bit index DIV kdr after it is 0), then two bytes
// of block counter.
func derive(block cipher.Block, salt []byte, label byte, out []byte) {
	var in, ks [aes.BlockSize]byte
	copy(in[:], salt)
	in[7] ^= label
	for i := 0; len(out) > 0; i++ {
		binary.BigEndian.PutUint16(in[14:], uint16(i))
		block.Encrypt(ks[:], in[:])
		out = out[copy(out, ks[:]):]
	}
}

// Stream is what opening one stream's packets keeps: the highest packet
// index taken (rollover count and sequence number) and which of the
// Window before it were taken.
type Stream struct {
	started bool
	rebase  bool // the next packet takes the rollover count Open is given
	top     uint64
	seen    [Window / 64]uint64
}

// Reset has the stream's next packet take the rollover count Open is
// given. What was taken stays taken: a packet replayed from before the
// Reset is refused as before it.
func (s *Stream) Reset() { s.rebase = true }

// Open authenticates and decrypts b in place and returns the packet in
// the clear (header, payload and padding). The packet's rollover count is
// the one nearest to the stream's last packet's, or roc for the stream's
// first packet and the first after Reset. A packet that fails is left as it was, but for the
// payload GCM clears.
func (o *Opener) Open(s *Stream, b []byte, roc uint32) ([]byte, error) {
	n := headerLen(b)
	if n < 0 || len(b) < n+tagLen {
		return nil, errShort
	}
	seq := uint16(b[2])<<8 | uint16(b[3])
	index := uint64(roc)<<16 | uint64(seq)
	if s.started {
		if !s.rebase {
			index = nearest(s.top, seq)
		}
		if index <= s.top && (s.top-index >= Window || s.has(index)) {
			return nil, ErrReplayed
		}
	}
	var iv [12]byte
	copy(iv[2:6], b[8:12]) // SSRC
	binary.BigEndian.PutUint32(iv[6:10], uint32(index>>16))
	binary.BigEndian.PutUint16(iv[10:12], seq)
	for i := range iv {
		iv[i] ^= o.salt[i]
	}
	plain, err := o.aead.Open(b[n:n], iv[:], b[n:], b[:n])
	if err != nil {
		return nil, errAuth
	}
	s.take(index)
	return b[:n+len(plain)], nil
}

// headerLen is the length of b's RTP header, CSRCs and extension
// included; -1 when b is shorter than its header says.
func headerLen(b []byte) int {
	if len(b) < 12 {
		return -1
	}
	n := 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 { // an extension
		if len(b) < n+4 {
			return -1
		}
		n += 4 + 4*int(binary.BigEndian.Uint16(b[n+2:n+4]))
	}
	if len(b) < n {
		return -1
	}
	return n
}

// nearest is the index with sequence number seq nearest to top.
func nearest(top uint64, seq uint16) uint64 {
	d := int64(int16(seq - uint16(top)))
	if int64(top)+d < 0 {
		return uint64(seq) // before the first cycle: cycle 0
	}
	return uint64(int64(top) + d)
}

func (s *Stream) has(index uint64) bool {
	i := index % Window
	return s.seen[i/64]&(1<<(i%64)) != 0
}

// take notes a packet taken.
func (s *Stream) take(index uint64) {
	s.rebase = false
	switch {
	case !s.started:
		s.started, s.top = true, index
		clear(s.seen[:])
	case index > s.top:
		if index-s.top >= Window {
			clear(s.seen[:])
		} else {
			for i := s.top + 1; i < index; i++ { // the numbers skipped: not taken yet
				j := i % Window
				s.seen[j/64] &^= 1 << (j % 64)
			}
		}
		s.top = index
	}
	i := index % Window
	s.seen[i/64] |= 1 << (i % 64)
}
