package sfu

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/internal/pionlog"
)

// ErrNoPort is returned when no port of the configured range can be bound.
var ErrNoPort = errors.New("sfu: no free port in the WebRTC port range")

// EngineParams configures an Engine.
type EngineParams struct {
	RTC    config.RTC
	Codecs []config.Codec
	// MaxIncomingBitrate (bps) is announced to publishers with REMB; 0 = none.
	MaxIncomingBitrate int
	// InitialOutgoingBitrate (bps) is what a subscriber's link is taken to
	// carry until its feedback tells (0: 600 kbit/s); MaxOutgoingBitrate
	// caps each subscriber (0: 20 Mbit/s).
	InitialOutgoingBitrate, MaxOutgoingBitrate int
	// NoBatching sends every packet with its own sendto and reads one per
	// recvfrom: for comparisons, and for kernels without sendmmsg.
	NoBatching bool
	Logger     *slog.Logger
}

// Engine owns the media sockets and builds peer connections on them. Every
// peer connection shares the engine's UDP (and ICE-TCP) sockets through
// ICE muxes, so the process never opens a media socket outside the
// configured ports, and one port holds any number of peers.
type Engine struct {
	log    *slog.Logger
	params EngineParams
	codecs []webrtc.RTPCodecParameters

	shards []*apiShard
	next   atomic.Uint32

	simLayers ssrcLayers // SSRC-based simulcast layers of every publisher, by SSRC

	conns     []*batchConn // every media UDP socket
	pubsMu    sync.Mutex
	pubs      map[*Publisher]struct{} // the publishers feedbackLoop reports to
	net       *liveInterfaces         // the interfaces every ICE agent reads (ICE-TCP candidates)
	closers   []func() error
	closeOnce sync.Once

	Stats Counters
}

// apiShard is one UDP port (per listen address) with the Pion APIs bound to it.
type apiShard struct {
	ports []int
	// What each transport's own API is made of (publisherAPI,
	// subscriberAPI): the direct path's DTLS hooks are per transport.
	se                 webrtc.SettingEngine
	pubMedia, subMedia *webrtc.MediaEngine
}

// Counters are the engine-wide media counters, read by /metrics.
type Counters struct {
	PacketsIn, BytesIn   atomic.Uint64
	PacketsOut, BytesOut atomic.Uint64
	NacksIn, Retransmits atomic.Uint64
	PLIsIn, PLIsOut      atomic.Uint64
	DroppedOut           atomic.Uint64
	// LayerSwitches counts switches of a down track to another simulcast
	// layer; BandwidthPauses videos paused because a subscriber's link
	// could not carry even their smallest layer; ProbeBytes padding sent
	// to probe links.
	LayerSwitches, BandwidthPauses, ProbeBytes atomic.Uint64
	// ResendsSkipped counts NACKed packets not sent again because the
	// subscriber's retransmission budget was spent.
	ResendsSkipped atomic.Uint64
	// RTCPRefused counts subscribers' RTCP packets dropped on the direct
	// path: failing authentication, replayed, or not parsing.
	RTCPRefused atomic.Uint64
	// DirectIn counts publishers' packets read on the direct path;
	// RTPRefused those of its streams that did not decrypt (forged,
	// replayed), dropped.
	DirectIn, RTPRefused atomic.Uint64
	// PausedVideos is the down tracks paused for bandwidth now.
	PausedVideos atomic.Int64
	// Estimates counts subscriber link estimates by EstimateBuckets (the
	// last bucket for everything above), one per subscriber and allocation.
	Estimates   [len(EstimateBuckets) + 1]atomic.Uint64
	EstimateSum atomic.Uint64
}

// EstimateBuckets are the upper bounds (bps) of the estimate histogram.
var EstimateBuckets = [...]int{100e3, 200e3, 300e3, 500e3, 750e3, 1e6, 1.5e6, 2e6, 3e6, 5e6, 10e6}

func (c *Counters) observeEstimate(bps int) {
	i := 0
	for i < len(EstimateBuckets) && bps > EstimateBuckets[i] {
		i++
	}
	c.Estimates[i].Add(1)
	c.EstimateSum.Add(uint64(bps))
}

// NewEngine binds the media sockets.
func NewEngine(p EngineParams) (*Engine, error) {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{log: p.Logger, params: p}
	// Publishers get no RTX: their resends come on the stream itself,
	// which the direct path reads (an RTX stream would go through Pion's
	// path, ingress.go). Subscribers get RTX where they take it.
	pubCodecs, err := codecParameters(p.Codecs, false)
	if err != nil {
		return nil, err
	}
	subCodecs, err := codecParameters(p.Codecs, true)
	if err != nil {
		return nil, err
	}
	e.codecs = subCodecs
	if err := e.listen(pubCodecs, subCodecs); err != nil {
		e.Close()
		return nil, err
	}
	stop, done := make(chan struct{}), make(chan struct{})
	e.closers = append(e.closers, func() error { close(stop); <-done; return nil })
	go e.feedbackLoop(stop, done)
	return e, nil
}

// listen binds the UDP sockets (one shard per port) and the ICE-TCP listener.
func (e *Engine) listen(pubCodecs, subCodecs []webrtc.RTPCodecParameters) error {
	nShards := 1
	if !e.params.RTC.WebRtcServer {
		nShards = min(runtime.NumCPU(), int(e.params.RTC.MaxPort)-int(e.params.RTC.MinPort)+1)
	}
	var err error
	if e.net, err = newLiveInterfaces(agentInterfacesMaxAge); err != nil {
		return fmt.Errorf("sfu: network interfaces: %w", err)
	}
	tcpMux, err := e.listenTCP()
	if err != nil {
		return err
	}
	taken := map[string]bool{}
	for i := range nShards {
		var muxes []ice.UDPMux
		var ports []int
		for _, l := range e.params.RTC.Listen {
			if l.Protocol == "tcp" {
				continue
			}
			conn, err := e.bindUDP(l, taken)
			if err != nil {
				if i > 0 && errors.Is(err, ErrNoPort) {
					break // fewer shards than cores is fine
				}
				return err
			}
			var sock net.PacketConn = conn
			if !e.params.NoBatching {
				bc := newBatchConn(conn)
				if a, err := netip.ParseAddr(l.AnnouncedIP); err == nil {
					bc.announced = a.Unmap() // the address its host candidates show
				}
				bc.round = e.round
				e.conns = append(e.conns, bc)
				sock = bc
			}
			e.closers = append(e.closers, conn.Close)
			ports = append(ports, conn.LocalAddr().(*net.UDPAddr).Port)
			params := ice.UDPMuxParams{
				UDPConn: sock,
				Logger:  pionlog.Factory{Log: e.quietLog()}.NewLogger("udpmux"),
			}
			if conn.LocalAddr().(*net.UDPAddr).IP.IsUnspecified() {
				if params.Net, err = newLiveInterfaces(0); err != nil {
					return fmt.Errorf("sfu: network interfaces: %w", err)
				}
			}
			mux := ice.NewUDPMuxDefault(params)
			e.closers = append(e.closers, mux.Close)
			muxes = append(muxes, mux)
		}
		if len(muxes) == 0 {
			if i == 0 {
				return fmt.Errorf("sfu: no UDP listen address configured")
			}
			break
		}
		var udp ice.UDPMux = muxes[0]
		if len(muxes) > 1 {
			udp = ice.NewMultiUDPMuxDefault(muxes...)
		}
		shard, err := e.newShard(udp, tcpMux, pubCodecs, subCodecs)
		if err != nil {
			return err
		}
		shard.ports = ports
		e.shards = append(e.shards, shard)
	}
	e.log.Info("media sockets bound", "shards", len(e.shards), "udpPorts", e.UDPPorts(), "tcp", tcpMux != nil)
	return nil
}

// quietLog is for Pion components whose warnings are expected in our
// setup (a mux on an unspecified address is deliberate).
func (e *Engine) quietLog() *slog.Logger {
	return slog.New(levelFilter{e.log.Handler(), slog.LevelError})
}

// bindUDP binds the first port of l's range that no other shard holds.
func (e *Engine) bindUDP(l config.Listen, taken map[string]bool) (*net.UDPConn, error) {
	lo, hi := e.portRange(l)
	if l.Port != 0 {
		lo, hi = l.Port, l.Port
	}
	for port := int(lo); port <= int(hi); port++ {
		key := net.JoinHostPort(l.IP, strconv.Itoa(port))
		if taken[key] {
			continue
		}
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(l.IP), Port: port})
		if err != nil {
			continue
		}
		taken[key] = true
		return conn, nil
	}
	return nil, fmt.Errorf("%w %d-%d on %s", ErrNoPort, lo, hi, l.IP)
}

func (e *Engine) portRange(l config.Listen) (uint16, uint16) {
	if l.MinPort != 0 && l.MaxPort != 0 {
		return l.MinPort, l.MaxPort
	}
	return e.params.RTC.MinPort, e.params.RTC.MaxPort
}

// listenTCP opens the ICE-TCP listener(s): on the fixed port in
// WebRtcServer mode, else on the first free port of the range.
func (e *Engine) listenTCP() (ice.TCPMux, error) {
	var muxes []ice.TCPMux
	for _, l := range e.params.RTC.Listen {
		if l.Protocol == "udp" {
			continue
		}
		lo, hi := e.portRange(l)
		if l.Port != 0 {
			lo, hi = l.Port, l.Port
		}
		var ln *net.TCPListener
		for port := int(lo); port <= int(hi) && ln == nil; port++ {
			ln, _ = net.ListenTCP("tcp", &net.TCPAddr{IP: net.ParseIP(l.IP), Port: port})
		}
		if ln == nil {
			return nil, fmt.Errorf("%w %d-%d (tcp) on %s", ErrNoPort, lo, hi, l.IP)
		}
		mux := ice.NewTCPMuxDefault(ice.TCPMuxParams{
			Listener:        ln,
			Logger:          pionlog.Factory{Log: e.quietLog()}.NewLogger("tcpmux"),
			ReadBufferSize:  32,
			WriteBufferSize: 4 << 20, // a full buffer drops packets instead of blocking the fan-out
			// A connection opened by a STUN request for a peer we do not know
			// (yet) lives this long unused; Close waits for such connections.
			FirstStunBindTimeout:         10 * time.Second,
			AliveDurationForConnFromStun: 5 * time.Second,
		})
		// Close shuts the listener and every known connection at once, then
		// waits for connections opened by STUN for peers it never learned of
		// to time out (AliveDurationForConnFromStun): nothing to wait for.
		e.closers = append(e.closers, func() error { go mux.Close(); return nil }, ln.Close)
		muxes = append(muxes, mux)
	}
	switch len(muxes) {
	case 0:
		return nil, nil
	case 1:
		return muxes[0], nil
	}
	return ice.NewMultiTCPMuxDefault(muxes...), nil
}

func (e *Engine) newShard(udp ice.UDPMux, tcp ice.TCPMux, pubCodecs, subCodecs []webrtc.RTPCodecParameters) (*apiShard, error) {
	se := webrtc.SettingEngine{}
	se.LoggerFactory = pionlog.Factory{Log: e.log}
	se.SetICEUDPMux(udp)
	if e.net != nil {
		se.SetNet(e.net)
	}
	if tcp != nil {
		se.SetICETCPMux(tcp)
	}
	se.SetNetworkTypes(e.networkTypes(tcp != nil))
	se.DisableActiveTCP(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(e.listensOnLoopback())
	se.SetLite(false)
	if rules := e.rewriteRules(); len(rules) > 0 {
		if err := se.SetICEAddressRewriteRules(rules...); err != nil {
			return nil, fmt.Errorf("sfu: announced address: %w", err)
		}
	}
	// AES-GCM costs a fraction of AES-CM + HMAC per packet; keep AES-CM for
	// peers that lack it.
	se.SetSRTPProtectionProfiles(
		dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80,
	)

	pubMedia, err := newMediaEngine(pubCodecs, true)
	if err != nil {
		return nil, err
	}
	subMedia, err := newMediaEngine(subCodecs, false)
	if err != nil {
		return nil, err
	}
	return &apiShard{se: se, pubMedia: pubMedia, subMedia: subMedia}, nil
}

// publisherAPI is the API of one publisher transport of shard sh: the
// server is its DTLS server (it answers "passive"), the DTLS hooks of its
// direct path, and two interceptors: one writes the rid into the first
// packets of SSRC-based simulcast layers (first: the other, and Pion, see
// it), one records the transport-wide sequence numbers of what Pion reads.
// NACKs and receiver reports are the server's own (pubIn).
func (sh *apiShard) publisherAPI(in *pubIn, layers *ssrcLayers) *webrtc.API {
	se := sh.se
	if err := se.SetAnsweringDTLSRole(webrtc.DTLSRoleServer); err != nil {
		panic(err) // only the roles client and server are taken, and this is one
	}
	if p := in.direct; p != nil {
		se.SetDTLSKeyLogWriter(&p.keys)
		se.SetDTLSServerHelloMessageHook(p.keys.ServerHello)
	}
	reg := &interceptor.Registry{}
	reg.Add(ridInjectorFactory{layers: layers})
	reg.Add(twccInFactory{in: in})
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(sh.pubMedia), webrtc.WithInterceptorRegistry(reg))
}

// subscriberAPI is the API of one subscriber transport of shard sh: no
// interceptors (the down tracks do their own reports and numbering), and
// with p, the DTLS hooks of its direct path. The media engine is shared:
// each peer connection copies it.
func (sh *apiShard) subscriberAPI(p *directPath) *webrtc.API {
	se := sh.se
	if p != nil {
		se.SetDTLSKeyLogWriter(&p.keys)
		se.SetDTLSServerHelloMessageHook(p.keys.ServerHello)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(sh.subMedia),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
}

// listensOnLoopback reports whether a listen address is a loopback one:
// only then are loopback candidates worth offering.
func (e *Engine) listensOnLoopback() bool {
	for _, l := range e.params.RTC.Listen {
		if ip := net.ParseIP(l.IP); ip != nil && ip.IsLoopback() {
			return true
		}
	}
	return false
}

// networkTypes are the ICE networks of the listen addresses: IPv4 for
// an IPv4 address or 0.0.0.0, IPv6 for an IPv6 one, both for "::".
func (e *Engine) networkTypes(withTCP bool) []webrtc.NetworkType {
	v4, v6 := false, false
	for _, l := range e.params.RTC.Listen {
		ip := net.ParseIP(l.IP)
		switch {
		case ip == nil || ip.To4() != nil:
			v4 = true
		case ip.IsUnspecified():
			v4, v6 = true, true
		default:
			v6 = true
		}
	}
	var out []webrtc.NetworkType
	if v4 {
		out = append(out, webrtc.NetworkTypeUDP4)
		if withTCP {
			out = append(out, webrtc.NetworkTypeTCP4)
		}
	}
	if v6 {
		out = append(out, webrtc.NetworkTypeUDP6)
		if withTCP {
			out = append(out, webrtc.NetworkTypeTCP6)
		}
	}
	return out
}

// rewriteRules puts the announced address of each listen address in the
// candidates gathered on it.
func (e *Engine) rewriteRules() []webrtc.ICEAddressRewriteRule {
	var rules []webrtc.ICEAddressRewriteRule
	for _, l := range e.params.RTC.Listen {
		if l.AnnouncedIP == "" {
			continue
		}
		rule := webrtc.ICEAddressRewriteRule{
			External:        []string{l.AnnouncedIP},
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}
		if ip := net.ParseIP(l.IP); ip != nil && !ip.IsUnspecified() {
			rule.Local = l.IP
		}
		rules = append(rules, rule)
	}
	return rules
}

// beginRound and endRound bracket one fan-out: the packets written in
// between leave with sendmmsg, batched per socket.
func (e *Engine) beginRound() {
	for _, c := range e.conns {
		c.beginRound()
	}
}

func (e *Engine) endRound() {
	for _, c := range e.conns {
		c.endRound()
	}
}

// round is beginRound (begin) or endRound.
func (e *Engine) round(begin bool) {
	if begin {
		e.beginRound()
	} else {
		e.endRound()
	}
}

// UDPPorts lists the bound UDP ports, shard by shard.
func (e *Engine) UDPPorts() []int {
	var ports []int
	for _, s := range e.shards {
		ports = append(ports, s.ports...)
	}
	return ports
}

// shard picks the API shard for a new peer, round robin.
func (e *Engine) shard() *apiShard {
	return e.shards[int(e.next.Add(1))%len(e.shards)]
}

// Close releases every socket. Peer connections must be closed first.
func (e *Engine) Close() error {
	var errs []error
	e.closeOnce.Do(func() {
		for i := len(e.closers) - 1; i >= 0; i-- {
			if err := e.closers[i](); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}
