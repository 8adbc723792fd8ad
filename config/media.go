package config

import (
	_ "embed"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
)

// ServeMode is how media flows in a room (see docs/config.md and the product brief).
type ServeMode string

const (
	ServeOpen   ServeMode = "Open"   // everyone publishes, everyone receives everything
	ServePull   ServeMode = "Pull"   // a peer receives only what it asks for
	ServeInvite ServeMode = "Invite" // only admins publish freely; others when invited
)

// Valid reports whether s is one of the three modes, spelled canonically.
func (s ServeMode) Valid() bool {
	return s == ServeOpen || s == ServePull || s == ServeInvite
}

// Media is the media server's configuration, read from a mediasoup_config.json of any shape
// the mediasoup-based server accepted (see docs/config.md).
type Media struct {
	Source            string    `json:"source"`   // file path, or "embedded default"
	HTTPAddr          string    `json:"httpAddr"` // not in the mediasoup file: env or flag
	LogLevel          string    `json:"logLevel"` // debug, info, warn, error or none
	ServeMode         ServeMode `json:"serveMode"`
	AllowEmptyTickets bool      `json:"allowEmptyTickets"`
	// TicketSecrets verify join tickets (HS256): AuthSettings.Secret, then
	// AuthSettings.PreviousSecret during a rotation. Never printed.
	TicketSecrets []string `json:"-"`
	// APIKeys authorize the portal API (bearer tokens): AuthSettings.ApiKey,
	// or env VCLASS_API_KEY. None = the API is off. Never printed.
	APIKeys []string `json:"-"`
	// WebhookURL receives room and peer events (WebhookSettings.Url or env
	// VCLASS_WEBHOOK_URL), signed with WebhookSecret (never printed).
	WebhookURL    string `json:"webhookUrl,omitempty"`
	WebhookSecret string `json:"-"`
	RTC           RTC    `json:"rtc"`
	// Cluster joins this node to others through Redis (env only).
	Cluster Cluster `json:"cluster"`
	Codecs  []Codec `json:"codecs"`
	Bitrate Bitrate `json:"bitrate"`
	Limits  Limits  `json:"limits"`
	// Ignored lists the keys present in the file that nothing used, as full paths.
	Ignored []string `json:"ignoredKeys"`

	// origin maps a JSON field path ("rtc.minPort") to the file key or env variable the value
	// came from, so that Validate names what the operator wrote. Fields set in code are
	// absent and named by their JSON path.
	origin map[string]string
}

// Cluster is a node's place among several sharing rooms through Redis:
// env VCLASS_REDIS_URL (empty: a single node), VCLASS_NODE_ID (default the
// host name) and VCLASS_PUBLIC_URL (the WebSocket URL clients reach this
// node at, required with Redis).
type Cluster struct {
	RedisURL  string `json:"-"` // may hold a password
	NodeID    string `json:"nodeId,omitempty"`
	PublicURL string `json:"publicUrl,omitempty"`
	// InternalURL is how the other nodes reach this node's HTTP API
	// (VCLASS_INTERNAL_URL; default http://HOSTNAME:PORT of HTTPAddr).
	InternalURL string `json:"internalUrl,omitempty"`
}

// RTC says where WebRTC media flows.
type RTC struct {
	// MinPort..MaxPort are the only ports ICE (UDP and ICE-TCP) may use, unless WebRtcServer.
	MinPort uint16 `json:"minPort"`
	MaxPort uint16 `json:"maxPort"`
	// Listen has at least one entry after loading.
	Listen []Listen `json:"listen"`
	// WebRtcServer puts every peer on the fixed Port of each Listen.
	WebRtcServer bool `json:"webRtcServer"`
}

// Listen is one address media is received on.
type Listen struct {
	Protocol string `json:"protocol"` // "udp", "tcp", or "" for both
	IP       string `json:"ip"`       // bind address; "0.0.0.0" or "::" = all interfaces
	// AnnouncedIP is the address put in ICE candidates; "" = detect the host's
	// non-loopback IPv4.
	AnnouncedIP string `json:"announcedIp"`
	Port        uint16 `json:"port"` // fixed port (WebRtcServer mode); 0 = use the range
	// MinPort..MaxPort is a per-listen PortRange (newer mediasoup shape); 0 when not given.
	MinPort uint16 `json:"minPort"`
	MaxPort uint16 `json:"maxPort"`
}

// Codec is one codec the server negotiates.
type Codec struct {
	Kind      string `json:"kind"`     // "audio" or "video"
	MimeType  string `json:"mimeType"` // canonical spelling, e.g. "video/VP8", "audio/opus"
	ClockRate uint32 `json:"clockRate"`
	Channels  uint16 `json:"channels"` // audio (1 when not given); 0 for video
	// Parameters are the fmtp parameters, all as strings, keys as written in the file.
	Parameters           map[string]string `json:"parameters"`
	PreferredPayloadType uint8             `json:"preferredPayloadType"` // 0 = assign automatically
	RTCPFeedback         []Feedback        `json:"rtcpFeedback"`
}

// Feedback is one a=rtcp-fb entry, e.g. {"nack", "pli"}.
type Feedback struct {
	Type      string `json:"type"`
	Parameter string `json:"parameter"`
}

// Fmtp renders the parameters as an SDP fmtp value, "key=value;key=value" with keys sorted
// so that equal codecs render equally. A parameter with an empty value renders as its key.
func (c Codec) Fmtp() string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(c.Parameters)) {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k)
		if v := c.Parameters[k]; v != "" {
			b.WriteByte('=')
			b.WriteString(v)
		}
	}
	return b.String()
}

// Bitrate holds the bit-rate settings, in bits per second.
type Bitrate struct {
	InitialAvailableOutgoing int    `json:"initialAvailableOutgoing"`
	MaxIncoming              int    `json:"maxIncoming"` // cap a publisher is told; 0 = none
	MaxOutgoing              int    `json:"maxOutgoing"` // cap per outgoing transport; 0 = none
	Throttling               string `json:"throttling"`  // ThrottlingStrategy as given; "" when absent
}

// Defaults for keys a file leaves out. Ports are mediasoup's worker defaults.
const (
	defaultHTTPAddr        = ":8011"
	defaultLogLevel        = "info"
	defaultMinPort         = 10000
	defaultMaxPort         = 59999
	defaultInitialOutgoing = 600000
	embeddedSource         = "embedded default"
)

//go:embed default_mediasoup_config.json
var defaultMediasoupConfig []byte

// DefaultMedia is the configuration used when no file is given: Open, anonymous joins, HTTP on
// :8011, RTC ports 20000-20009 on all interfaces.
func DefaultMedia() *Media {
	m, err := ParseMedia(defaultMediasoupConfig, embeddedSource)
	if err != nil {
		// The file is compiled in and covered by tests: failing here is a build defect.
		panic("config: embedded default_mediasoup_config.json: " + err.Error())
	}
	return m
}

// ParseMedia reads a mediasoup_config.json. source is recorded in Media.Source. Errors are a
// *SyntaxError or a *KeyError.
func ParseMedia(data []byte, source string) (*Media, error) {
	root, err := parseDotNetJSON(data)
	if err != nil {
		return nil, err
	}
	m, err := decodeMedia(root)
	if err != nil {
		return nil, err
	}
	m.Source = source
	m.Ignored = root.unusedPaths()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// LoadMedia reads the file at path; errors name the file and wrap the *SyntaxError,
// *KeyError or file system error.
func LoadMedia(path string) (*Media, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m, err := ParseMedia(data, path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// pathOf names the field at JSON path field as the operator wrote it (see origin).
func (m *Media) pathOf(field string) string {
	if p := m.origin[field]; p != "" {
		return p
	}
	return field
}

// note records that field came from path; an empty path (no such section) records nothing.
func (m *Media) note(field, path string) {
	if path == "" {
		return
	}
	if m.origin == nil {
		m.origin = make(map[string]string)
	}
	m.origin[field] = path
}

// defaultFeedback is what mediasoup advertises for a codec that lists no RtcpFeedback.
func defaultFeedback(kind string) []Feedback {
	if kind == "video" {
		return []Feedback{{"nack", ""}, {"nack", "pli"}, {"ccm", "fir"}, {"goog-remb", ""}, {"transport-cc", ""}}
	}
	return []Feedback{{"transport-cc", ""}}
}
