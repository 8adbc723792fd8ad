// Package dtlssrtp derives the SRTP keys of a DTLS-SRTP transport (RFC
// 5764 section 4.2) from what can be seen of its handshake outside Pion,
// which gives no access to the handshake's state: the key log (client
// random and master secret, from either side) and the server hello
// (server random, cipher suite, SRTP profile), as the server sends it
// (a DTLS hook) or as it arrives at the client (read off the wire: it is
// sent in the clear).
package dtlssrtp

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/srtp/v3"
)

// Handshake collects what one DTLS handshake's SRTP keys are exported
// from. Use it as the DTLS key log writer, and give it the server hello
// through ServerHello (as the server) or ReadDatagram (as the client).
type Handshake struct {
	mu           sync.Mutex
	clientRandom []byte
	masterSecret []byte
	serverRandom []byte
	suite        dtls.CipherSuiteID
	profile      dtls.SRTPProtectionProfile
}

// Keys are a transport's SRTP master keys: Local protects what this side
// sends, Remote what it receives.
type Keys struct {
	Profile               srtp.ProtectionProfile
	LocalKey, LocalSalt   []byte
	RemoteKey, RemoteSalt []byte
}

// Write takes the DTLS key log: one "CLIENT_RANDOM <hex> <hex>" line
// (NSS key log format) per handshake.
func (h *Handshake) Write(line []byte) (int, error) {
	f := strings.Fields(string(line))
	if len(f) != 3 || f[0] != "CLIENT_RANDOM" {
		return len(line), nil
	}
	cr, err1 := hex.DecodeString(f[1])
	ms, err2 := hex.DecodeString(f[2])
	if err1 != nil || err2 != nil {
		return 0, errors.New("dtlssrtp: unreadable DTLS key log line")
	}
	h.mu.Lock()
	h.clientRandom, h.masterSecret = cr, ms
	h.mu.Unlock()
	return len(line), nil
}

// ServerHello notes the server hello the server sends, unchanged: a
// server's ServerHelloMessageHook.
func (h *Handshake) ServerHello(m handshake.MessageServerHello) handshake.Message {
	h.noteHello(&m)
	return &m
}

func (h *Handshake) noteHello(m *handshake.MessageServerHello) {
	random := m.Random.MarshalFixed()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.serverRandom = random[:]
	if m.CipherSuiteID != nil {
		h.suite = dtls.CipherSuiteID(*m.CipherSuiteID)
	}
	h.profile = 0
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 && len(u.MasterKeyIdentifier) == 0 {
			h.profile = dtls.SRTPProtectionProfile(u.ProtectionProfiles[0])
		}
	}
}

// The DTLS record and handshake headers (RFC 6347 sections 4.1, 4.2.2).
const (
	recordHeaderLen    = 13
	handshakeHeaderLen = 12
	contentHandshake   = 22
)

// ReadDatagram notes the server hello in a datagram the client received,
// if it carries one (unfragmented, in epoch 0, as servers send it), and
// says whether it did. Anything else in it is left alone.
func (h *Handshake) ReadDatagram(b []byte) bool {
	found := false
	for len(b) >= recordHeaderLen {
		n := recordHeaderLen + int(binary.BigEndian.Uint16(b[11:13]))
		if n > len(b) {
			return found
		}
		record := b[recordHeaderLen:n]
		if b[0] == contentHandshake && binary.BigEndian.Uint16(b[3:5]) == 0 {
			for len(record) >= handshakeHeaderLen {
				var hh handshake.Header
				if hh.Unmarshal(record) != nil {
					break
				}
				end := handshakeHeaderLen + int(hh.FragmentLength)
				if end > len(record) {
					break
				}
				if hh.Type == handshake.TypeServerHello && hh.FragmentOffset == 0 && hh.FragmentLength == hh.Length {
					var m handshake.MessageServerHello
					if m.Unmarshal(record[handshakeHeaderLen:end]) == nil {
						h.noteHello(&m)
						found = true
					}
				}
				record = record[end:]
			}
		}
		b = b[n:]
	}
	return found
}

// ExportKeyingMaterial implements srtp.KeyingMaterialExporter as DTLS 1.2
// does (RFC 5705): the PRF of the cipher suite over the master secret, with
// the label and both randoms as seed. Called with h.mu held (Keys).
func (h *Handshake) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if len(context) != 0 {
		return nil, errors.New("dtlssrtp: keying material context not supported")
	}
	seed := make([]byte, 0, len(label)+64)
	seed = append(append(append(seed, label...), h.clientRandom...), h.serverRandom...)
	hash := sha256.New
	switch h.suite {
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:
		hash = sha512.New384
	}
	return prf.PHash(h.masterSecret, seed, length, hash)
}

// Keys exports the SRTP keys once the handshake is complete; isClient says
// which side this is. The master secret is forgotten once they are.
func (h *Handshake) Keys(isClient bool) (*Keys, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.clientRandom) != 32 || len(h.serverRandom) != 32 || len(h.masterSecret) == 0 {
		return nil, errors.New("dtlssrtp: the handshake was not seen whole")
	}
	var profile srtp.ProtectionProfile
	switch h.profile {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AEAD_AES_256_GCM:
		profile = srtp.ProtectionProfileAeadAes256Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	default:
		return nil, fmt.Errorf("dtlssrtp: SRTP profile %#x not supported", uint16(h.profile))
	}
	c := srtp.Config{Profile: profile}
	if err := c.ExtractSessionKeysFromDTLS(h, isClient); err != nil {
		return nil, err
	}
	clear(h.masterSecret) // what is needed of it is derived
	h.masterSecret = nil
	return &Keys{
		Profile:  profile,
		LocalKey: c.Keys.LocalMasterKey, LocalSalt: c.Keys.LocalMasterSalt,
		RemoteKey: c.Keys.RemoteMasterKey, RemoteSalt: c.Keys.RemoteMasterSalt,
	}, nil
}
