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
// consent, DTLS, RTCP both ways, and the media of a stream until the
// direct path can be taken (before DTLS is up, ICE over TCP). A stream
// that went direct stays direct: its packets are dropped while there is
// no route (ICE moved to TCP) rather than handed back to Pion, whose SRTP
// context would not know the stream's rollover count (a wrong count
// encrypts a packet index twice under one key). Subscriber transports do
// not negotiate cryptex (RFC 9335): what they carry in header extensions
// is transport-wide sequence numbers and AV1 dependency descriptors.
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
	keys  dtlsKeys
	srtp  atomic.Pointer[srtpKeys]
	route atomic.Pointer[udpRoute]

	mu          sync.Mutex // orders the route's updates
	routeByPair bool       // a selected-pair change set the route: newer than any first reading
}

// firstRoute sets the route read when the path starts, unless a change of
// the selected pair set a newer one meanwhile.
func (p *directPath) firstRoute(r *udpRoute) {
	p.mu.Lock()
	if !p.routeByPair {
		p.route.Store(r)
	}
	p.mu.Unlock()
}

// pairChanged sets the route of a newly selected pair.
func (p *directPath) pairChanged(r *udpRoute) {
	p.mu.Lock()
	p.routeByPair = true
	p.route.Store(r)
	p.mu.Unlock()
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
// the label and both randoms as seed. Called with k.mu held (srtpKeys).
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
	clear(k.masterSecret) // what is needed of it is derived
	k.masterSecret = nil
	return &srtpKeys{profile: profile, key: c.Keys.LocalMasterKey, salt: c.Keys.LocalMasterSalt}, nil
}

// routeOf is the direct route of a selected candidate pair: UDP, from a
// socket of the engine (nil otherwise: Pion's path).
func (e *Engine) routeOf(pair *webrtc.ICECandidatePair) *udpRoute {
	if pair == nil || pair.Local == nil || pair.Remote == nil || pair.Local.Protocol != webrtc.ICEProtocolUDP ||
		pair.Local.Typ != webrtc.ICECandidateTypeHost {
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
		if !bound.IsUnspecified() && bound.Unmap() != local.Unmap() && c.announced != local.Unmap() {
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

// outStream is one stream of a srtpOut: the rollover count of its newest
// packet, whichever path carried it.
type outStream struct {
	ssrc   uint32
	last   uint16 // the newest sequence number
	roc    uint32
	seen   bool
	direct bool // it went direct: never through Pion again
	synced bool // the context's count is ours (set again after packets the context did not see)
}

// index notes a packet of the stream and returns its rollover count.
func (st *outStream) index(seq uint16) uint32 {
	if !st.seen {
		st.seen, st.last = true, seq
		return st.roc
	}
	if int16(seq-st.last) > 0 { // newer
		if seq < st.last {
			st.roc++
		}
		st.last = seq
		return st.roc
	}
	if seq > st.last && st.roc > 0 { // older, from before the last rollover
		return st.roc - 1
	}
	return st.roc
}

// srtpOut sends a down track's streams (media and RTX): through Pion until
// the direct path is there, then with its own SRTP context.
type srtpOut struct {
	mu      sync.Mutex // forwarding, padding and retransmissions write from different goroutines
	keys    *srtpKeys
	ctx     *srtp.Context
	streams [2]outStream
	hdr     rtp.Header
	buf     [maxPacketSize + 64]byte
}

// errNoRoute: a stream that went direct has no route now.
var errNoRoute = errors.New("sfu: no direct route to the subscriber")

var errTooLarge = errors.New("sfu: packet too large")

// stream is o's stream of ssrc (a third would replace the second).
func (o *srtpOut) stream(ssrc uint32) *outStream {
	for i := range o.streams {
		if st := &o.streams[i]; st.ssrc == ssrc && st.seen {
			return st
		}
	}
	for i := range o.streams {
		if st := &o.streams[i]; !st.seen {
			*st = outStream{ssrc: ssrc}
			return st
		}
	}
	o.streams[1] = outStream{ssrc: ssrc}
	return &o.streams[1]
}

// send sends one packet: with k on route r when both are there, else
// through Pion's w (unless the stream went direct).
func (o *srtpOut) send(k *srtpKeys, r *udpRoute, w webrtc.TrackLocalWriter, h *rtp.Header, payload []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.stream(h.SSRC)
	roc := st.index(h.SequenceNumber)
	if k == nil || r == nil {
		if st.direct {
			st.synced = false
			return 0, errNoRoute
		}
		return w.WriteRTP(h, payload)
	}
	if o.keys != k {
		ctx, err := srtp.CreateContext(k.key, k.salt, k.profile)
		if err != nil {
			return 0, err
		}
		o.keys, o.ctx = k, ctx
		for i := range o.streams {
			o.streams[i].synced = false
		}
	}
	if !st.synced {
		o.ctx.SetROC(h.SSRC, roc)
		st.synced = true
	}
	st.direct = true
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
