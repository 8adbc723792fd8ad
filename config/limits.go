package config

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Limits bound what one address, one connection, one peer, one room and the
// node may take (docs/security.md). Each is LimitSettings.<Key> in the file
// (at the root or in MediasoupSettings) or env VCLASS_LIMIT_<KEY>; zero
// turns a limit off.
type Limits struct {
	ConnectionsPerIP     int           `json:"connectionsPerIp"`     // WebSocket connections open at once from one address
	ConnectionsPerSecond float64       `json:"connectionsPerSecond"` // new WebSocket connections a second from one address...
	ConnectionBurst      int           `json:"connectionBurst"`      // ... in bursts of up to this many
	APIRequestsPerSecond float64       `json:"apiRequestsPerSecond"` // portal API requests a second from one address...
	APIRequestBurst      int           `json:"apiRequestBurst"`      // ... in bursts of up to this many
	MessageBytes         int           `json:"messageBytes"`         // the largest signaling message
	MessagesPerSecond    float64       `json:"messagesPerSecond"`    // requests a second on one connection...
	MessageBurst         int           `json:"messageBurst"`         // ... in bursts of up to this many
	PeersPerRoom         int           `json:"peersPerRoom"`         // a room's own maxPeers may be lower
	ProducersPerPeer     int           `json:"producersPerPeer"`     // and sources named at join
	RoomsPerNode         int           `json:"roomsPerNode"`         // rooms live on this node at once
	APIBodyBytes         int           `json:"apiBodyBytes"`         // the largest portal API request body
	ReadHeaderTimeout    time.Duration `json:"readHeaderTimeout"`    // to read a request's headers
	ReadTimeout          time.Duration `json:"readTimeout"`          // to read a whole request (not a WebSocket's life)
	WriteTimeout         time.Duration `json:"writeTimeout"`         // to write a response (not a WebSocket's life)
	IdleTimeout          time.Duration `json:"idleTimeout"`          // a kept-alive connection between requests
	// TrustedProxies are the addresses whose X-Forwarded-For names the
	// client (LimitSettings.TrustedProxies, env VCLASS_TRUSTED_PROXIES):
	// by default loopback and private networks, where nginx sits.
	TrustedProxies []netip.Prefix `json:"trustedProxies"`
}

// limitSpec is one limit: its key in LimitSettings, its default, and where
// it is kept (*int, *float64, or *time.Duration given in seconds).
type limitSpec struct {
	key   string
	def   float64
	field func(*Limits) any
}

// limitSpecs list every limit, in the order docs/security.md gives them.
var limitSpecs = []limitSpec{
	{"ConnectionsPerIp", 200, func(l *Limits) any { return &l.ConnectionsPerIP }},
	{"ConnectionsPerSecondPerIp", 20, func(l *Limits) any { return &l.ConnectionsPerSecond }},
	{"ConnectionBurstPerIp", 200, func(l *Limits) any { return &l.ConnectionBurst }},
	{"ApiRequestsPerSecondPerIp", 200, func(l *Limits) any { return &l.APIRequestsPerSecond }},
	{"ApiRequestBurstPerIp", 400, func(l *Limits) any { return &l.APIRequestBurst }},
	{"MaxMessageBytes", 256 << 10, func(l *Limits) any { return &l.MessageBytes }},
	{"MessagesPerSecond", 50, func(l *Limits) any { return &l.MessagesPerSecond }},
	{"MessageBurst", 100, func(l *Limits) any { return &l.MessageBurst }},
	{"MaxPeersPerRoom", 500, func(l *Limits) any { return &l.PeersPerRoom }},
	{"MaxProducersPerPeer", 8, func(l *Limits) any { return &l.ProducersPerPeer }},
	{"MaxRoomsPerNode", 1000, func(l *Limits) any { return &l.RoomsPerNode }},
	{"MaxApiBodyBytes", 64 << 10, func(l *Limits) any { return &l.APIBodyBytes }},
	{"ReadHeaderTimeoutSeconds", 10, func(l *Limits) any { return &l.ReadHeaderTimeout }},
	{"ReadTimeoutSeconds", 30, func(l *Limits) any { return &l.ReadTimeout }},
	{"WriteTimeoutSeconds", 60, func(l *Limits) any { return &l.WriteTimeout }},
	{"IdleTimeoutSeconds", 120, func(l *Limits) any { return &l.IdleTimeout }},
}

// EnvTrustedProxies replaces LimitSettings.TrustedProxies: addresses or
// CIDR prefixes, comma-separated.
const EnvTrustedProxies = "VCLASS_TRUSTED_PROXIES"

// defaultTrustedProxies: where a reverse proxy of the deployment sits.
var defaultTrustedProxies = []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"}

// DefaultLimits are the limits a file and the environment leave alone.
func DefaultLimits() Limits {
	var l Limits
	for _, s := range limitSpecs {
		_ = s.set(&l, s.def)
	}
	for _, p := range defaultTrustedProxies {
		l.TrustedProxies = append(l.TrustedProxies, netip.MustParsePrefix(p))
	}
	return l
}

// LimitEnv is the environment variable of a LimitSettings key:
// MaxPeersPerRoom → VCLASS_LIMIT_MAX_PEERS_PER_ROOM.
func LimitEnv(key string) string {
	var b strings.Builder
	b.WriteString("VCLASS_LIMIT_")
	for i, r := range key {
		if i > 0 && unicode.IsUpper(r) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// LimitKeys lists every LimitSettings key with its default, as the
// documentation and the tests name them.
func LimitKeys() map[string]float64 {
	keys := make(map[string]float64, len(limitSpecs))
	for _, s := range limitSpecs {
		keys[s.key] = s.def
	}
	return keys
}

// set stores v (checked: not negative, whole for counts) in l.
func (s limitSpec) set(l *Limits, v float64) error {
	if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Errorf("must be 0 (no limit) or more")
	}
	switch p := s.field(l).(type) {
	case *int:
		if v != math.Trunc(v) || v > math.MaxInt32 {
			return fmt.Errorf("must be a whole number up to %d", math.MaxInt32)
		}
		*p = int(v)
	case *float64:
		*p = v
	case *time.Duration:
		if v > 24*3600 {
			return fmt.Errorf("must be a day (86400 seconds) or less")
		}
		*p = time.Duration(v * float64(time.Second))
	}
	return nil
}

// decodeMediaLimits reads LimitSettings, at the root or in MediasoupSettings.
func decodeMediaLimits(m *Media, root, ms *node) error {
	m.Limits = DefaultLimits()
	sec, err := pickObject(root, ms, "LimitSettings")
	if err != nil || sec == nil {
		return err
	}
	for _, s := range limitSpecs {
		v := sec.lookup(s.key)
		if v.unset() {
			continue
		}
		f, err := v.floatValue()
		if err != nil {
			return err
		}
		if err := s.set(&m.Limits, f); err != nil {
			return v.valueError(err.Error())
		}
		m.note("limits."+s.key, sec.keyPath(s.key))
	}
	return optPrefixes(sec, "TrustedProxies", &m.Limits.TrustedProxies)
}

// optPrefixes sets *dst from the addresses and prefixes at key: a JSON
// array, or one comma-separated string; an unset key leaves *dst alone.
func optPrefixes(n *node, key string, dst *[]netip.Prefix) error {
	v := n.lookup(key)
	if v.unset() {
		return nil
	}
	var list []string
	if arr, err := n.array(key); err == nil && arr != nil {
		for _, e := range arr.elements() {
			s, err := e.scalarText()
			if err != nil {
				return err
			}
			list = append(list, s)
		}
	} else if s, err := v.scalarText(); err == nil {
		list = strings.Split(s, ",")
	} else {
		return v.typeError("an array of addresses or prefixes")
	}
	prefixes, err := parsePrefixes(list)
	if err != nil {
		return v.valueError(err.Error())
	}
	*dst = prefixes
	return nil
}

// applyLimitsEnv applies VCLASS_LIMIT_* and VCLASS_TRUSTED_PROXIES.
func (m *Media) applyLimitsEnv(getenv func(string) string) error {
	for _, s := range limitSpecs {
		env := LimitEnv(s.key)
		v := strings.TrimSpace(getenv(env))
		if v == "" {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err == nil {
			err = s.set(&m.Limits, f)
		} else {
			err = fmt.Errorf("is not a number")
		}
		if err != nil {
			return &KeyError{Path: env, Value: v, Reason: err.Error()}
		}
		m.note("limits."+s.key, env)
	}
	if v := strings.TrimSpace(getenv(EnvTrustedProxies)); v != "" {
		proxies, err := parsePrefixes(strings.Split(v, ","))
		if err != nil {
			return &KeyError{Path: EnvTrustedProxies, Value: v, Reason: err.Error()}
		}
		m.Limits.TrustedProxies = proxies
	}
	return nil
}

// parsePrefixes reads addresses ("10.0.0.5") and prefixes ("10.0.0.0/8");
// empty entries are skipped, so "" trusts no proxy.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	out := []netip.Prefix{}
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or a prefix like 10.0.0.0/8", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
