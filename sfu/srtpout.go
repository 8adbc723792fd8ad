package sfu

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/prf"
	"github.com/pion/dtls/v3/pkg/protocol/extension"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// The direct path: a subscriber's media packets are encrypted with the
// server's own SRTP contexts and go straight into the batched socket, not
// through Pion's RTP sender, SRTP session, DTLS mux, ICE connection and
// UDP mux (a fifth of a loaded node's CPU, and a lock or two per packet,
// for what is, once ICE and DTLS are up, "encrypt, send to this address").
// Pion keeps doing everything else on the transport: ICE checks and
// consent, DTLS, RTCP both ways, and the media whenever the direct path
// cannot be taken (ICE over TCP, before DTLS is up).
//
// The SRTP master keys are exported from the DTLS handshake (RFC 5764
// section 4.2) as Pion exports them; Pion gives no access to the
// handshake's state, so each subscriber transport hears of it through the
// two hooks DTLS offers: the key log (client random and master secret) and
// the server hello it sends (server random, cipher suite, SRTP profile).
// The server is the DTLS server of every subscriber transport it offers
// (browsers and Pion answer "active"); were it ever the client, the server
// hello hook is not called and the transport keeps Pion's path.
type directPath struct {
	keys dtlsKeys
	// cryptex: header extensions are encrypted too (RFC 9335), as the
	// subscriber's answer asked (Pion negotiates it by default).
	cryptex atomic.Bool
	srtp    atomic.Pointer[srtpKeys]
	route   atomic.Pointer[udpRoute]
}

// srtpKeys are the server's write keys of one subscriber transport.
type srtpKeys struct {
	profile   srtp.ProtectionProfile
	key, salt []byte
}

// udpRoute is where the transport's selected ICE pair sends: from one of
// the engine's sockets to the subscriber's address.
type udpRoute struct {
	conn *batchConn
	to   netip.AddrPort
}

// take returns the keys and route of the direct path, nil when it cannot
// be taken now.
func (p *directPath) take() (*srtpKeys, *udpRoute) {
	if p == nil {
		return nil, nil
	}
	k, r := p.srtp.Load(), p.route.Load()
	if k == nil || r == nil {
		return nil, nil
	}
	return k, r
}

// dtlsKeys collects what the SRTP keys are exported from.
type dtlsKeys struct {
	mu           sync.Mutex
	clientRandom []byte
	masterSecret []byte
	serverRandom []byte
	suite        dtls.CipherSuiteID
	profile      dtls.SRTPProtectionProfile
}

// Write takes the DTLS key log: one "CLIENT_RANDOM <hex> <hex>" line
// (NSS key log format) per handshake.
func (k *dtlsKeys) Write(line []byte) (int, error) {
	f := strings.Fields(string(line))
	if len(f) != 3 || f[0] != "CLIENT_RANDOM" {
		return len(line), nil
	}
	cr, err1 := hex.DecodeString(f[1])
	ms, err2 := hex.DecodeString(f[2])
	if err1 != nil || err2 != nil {
		return 0, errors.New("sfu: unreadable DTLS key log line")
	}
	k.mu.Lock()
	k.clientRandom, k.masterSecret = cr, ms
	k.mu.Unlock()
	return len(line), nil
}

// serverHello notes the server hello the transport sends, unchanged.
func (k *dtlsKeys) serverHello(m handshake.MessageServerHello) handshake.Message {
	random := m.Random.MarshalFixed()
	k.mu.Lock()
	k.serverRandom = random[:]
	if m.CipherSuiteID != nil {
		k.suite = dtls.CipherSuiteID(*m.CipherSuiteID)
	}
	for _, e := range m.Extensions {
		if u, ok := e.(*extension.UseSRTP); ok && len(u.ProtectionProfiles) == 1 && len(u.MasterKeyIdentifier) == 0 {
			k.profile = dtls.SRTPProtectionProfile(u.ProtectionProfiles[0])
		}
	}
	k.mu.Unlock()
	return &m
}

// ExportKeyingMaterial implements srtp.KeyingMaterialExporter as DTLS 1.2
// does (RFC 5705): the PRF of the cipher suite over the master secret, with
// the label and both randoms as seed.
func (k *dtlsKeys) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if len(context) != 0 {
		return nil, errors.New("sfu: keying material context not supported")
	}
	seed := make([]byte, 0, len(label)+64)
	seed = append(append(append(seed, label...), k.clientRandom...), k.serverRandom...)
	hash := sha256.New
	switch k.suite {
	case dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:
		hash = sha512.New384
	}
	return prf.PHash(k.masterSecret, seed, length, hash)
}

// srtpKeys exports the server's SRTP write keys, once the handshake that
// the hooks saw is complete.
func (k *dtlsKeys) srtpKeys() (*srtpKeys, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.clientRandom) != 32 || len(k.serverRandom) != 32 || len(k.masterSecret) == 0 {
		return nil, errors.New("sfu: the DTLS handshake was not seen as its server")
	}
	var profile srtp.ProtectionProfile
	switch k.profile {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AEAD_AES_256_GCM:
		profile = srtp.ProtectionProfileAeadAes256Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	default:
		return nil, fmt.Errorf("sfu: SRTP profile %#x not sent directly", uint16(k.profile))
	}
	c := srtp.Config{Profile: profile}
	if err := c.ExtractSessionKeysFromDTLS(k, false); err != nil {
		return nil, err
	}
	return &srtpKeys{profile: profile, key: c.Keys.LocalMasterKey, salt: c.Keys.LocalMasterSalt}, nil
}

// routeOf is the direct route of a selected candidate pair: UDP, from a
// socket of the engine (nil otherwise: Pion's path).
func (e *Engine) routeOf(pair *webrtc.ICECandidatePair) *udpRoute {
	if pair == nil || pair.Local == nil || pair.Remote == nil || pair.Local.Protocol != webrtc.ICEProtocolUDP {
		return nil
	}
	local, err1 := netip.ParseAddr(pair.Local.Address)
	remote, err2 := netip.ParseAddr(pair.Remote.Address)
	if err1 != nil || err2 != nil {
		return nil
	}
	var conn *batchConn
	for _, c := range e.conns {
		a := c.LocalAddr().(*net.UDPAddr)
		if a.Port != int(pair.Local.Port) {
			continue
		}
		bound, _ := netip.AddrFromSlice(a.IP)
		if !bound.IsUnspecified() && bound.Unmap() != local.Unmap() {
			continue
		}
		if conn != nil {
			return nil // two sockets could be meant
		}
		conn = c
	}
	if conn == nil {
		return nil
	}
	to := netip.AddrPortFrom(remote, pair.Remote.Port)
	if !conn.sys.canBatch(to) {
		return nil
	}
	return &udpRoute{conn: conn, to: to}
}

// outStream is one stream of a srtpOut: its last sequence number and
// rollover count, to go on with them in a new context.
type outStream struct {
	ssrc    uint32
	last    uint16 // the newest sequence number sent
	seen    bool
	roc     uint32 // the old context's count, while carried
	carried bool   // a new context: the next packet sets the count
}

// stream is o's stream of ssrc (a third replaces the older).
func (o *srtpOut) stream(ssrc uint32) *outStream {
	if o.streams[0].ssrc == ssrc {
		return &o.streams[0]
	}
	if o.streams[1].ssrc != ssrc {
		o.streams[1] = outStream{ssrc: ssrc}
	}
	return &o.streams[1]
}

// srtpOut is a down track's own SRTP context: the streams it sends (its
// media and RTX SSRCs) are encrypted here and nowhere else once the
// direct path is taken.
type srtpOut struct {
	mu      sync.Mutex // forwarding, padding and retransmissions write from different goroutines
	keys    *srtpKeys
	cryptex bool
	ctx     *srtp.Context
	streams [2]outStream // the streams sent: media and RTX
	hdr     rtp.Header
	buf     [maxPacketSize + 64]byte
}

var errTooLarge = errors.New("sfu: packet too large")

// write encrypts one packet and queues it on the route's socket.
func (o *srtpOut) write(k *srtpKeys, cryptex bool, r *udpRoute, h *rtp.Header, payload []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.keys != k || o.cryptex != cryptex {
		if err := o.newContext(k, cryptex); err != nil {
			return 0, err
		}
	}
	st := o.stream(h.SSRC)
	if st.carried {
		// The count goes on from the old context's newest packet.
		roc := st.roc
		switch d := int(h.SequenceNumber) - int(st.last); {
		case d < -1<<15:
			roc++
		case d > 1<<15 && roc > 0:
			roc--
		}
		o.ctx.SetROC(h.SSRC, roc)
		st.carried = false
	}
	if d := int16(h.SequenceNumber - st.last); d > 0 || !st.seen {
		st.last, st.seen = h.SequenceNumber, true
	}
	n, err := h.MarshalTo(o.buf[:])
	if err != nil {
		return 0, err
	}
	pad := int(h.PaddingSize) // as Pion marshals it
	if n+len(payload)+pad+32 > len(o.buf) {
		return 0, errTooLarge
	}
	n += copy(o.buf[n:], payload)
	clear(o.buf[n : n+pad])
	if h.Padding && pad > 0 {
		o.buf[n+pad-1] = byte(pad)
	}
	n += pad
	out, err := o.ctx.EncryptRTP(o.buf[:0], o.buf[:n], &o.hdr)
	if err != nil {
		return 0, err
	}
	return r.conn.WriteToAddrPort(out, r.to)
}

// newContext makes the context for keys k, the streams going on with the
// rollover counts they had (a renegotiation turned cryptex on or off).
func (o *srtpOut) newContext(k *srtpKeys, cryptex bool) error {
	mode := srtp.CryptexModeDisabled
	if cryptex {
		mode = srtp.CryptexModeEnabled
	}
	ctx, err := srtp.CreateContext(k.key, k.salt, k.profile, srtp.Cryptex(mode))
	if err != nil {
		return err
	}
	if o.ctx != nil && o.keys == k {
		for i := range o.streams {
			st := &o.streams[i]
			st.roc, st.carried = o.ctx.ROC(st.ssrc)
		}
	}
	o.keys, o.cryptex, o.ctx = k, cryptex, ctx
	return nil
}
