package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Validate checks m and returns the first problem as a *KeyError naming the file key, the
// environment variable, or the JSON field path the bad value came from.
func (m *Media) Validate() error {
	for _, check := range []func() error{m.validateGeneral, m.validateRTC, m.validateCodecs, m.validateBitrate} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// minSecretLength is auth.MinSecretLength (config imports nothing of ours).
const minSecretLength = 32

func (m *Media) bad(field, value, reason string) *KeyError {
	return &KeyError{Path: m.pathOf(field), Value: value, Reason: reason}
}

func (m *Media) validateGeneral() error {
	switch m.LogLevel {
	case "debug", "info", "warn", "error", "none":
	default:
		return m.bad("logLevel", strconv.Quote(m.LogLevel), "is not one of debug, info, warn, error, none")
	}
	if !m.ServeMode.Valid() {
		return m.bad("serveMode", strconv.Quote(string(m.ServeMode)), "is not one of Open, Pull, Invite")
	}
	if _, port, err := net.SplitHostPort(m.HTTPAddr); err != nil || !isPortNumber(port) {
		return m.bad("httpAddr", strconv.Quote(m.HTTPAddr), "is not a listen address like :8011 or 127.0.0.1:8011")
	}
	if m.WebhookURL != "" {
		if u, err := url.Parse(m.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return m.bad("webhookUrl", strconv.Quote(m.WebhookURL), "is not an http(s) URL")
		}
	}
	for i, key := range m.APIKeys {
		if len(key) < minSecretLength {
			return m.bad("apiKeys["+strconv.Itoa(i)+"]", "", fmt.Sprintf("is shorter than %d characters", minSecretLength))
		}
	}
	for i, secret := range m.TicketSecrets {
		if len(secret) < minSecretLength {
			// The value stays out of the message: it is a secret.
			return m.bad("ticketSecrets["+strconv.Itoa(i)+"]", "", fmt.Sprintf("is shorter than %d characters (HS256 wants 256 bits)", minSecretLength))
		}
	}
	return nil
}

func isPortNumber(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && (n > 0 || s == "0")
}

func (m *Media) validateRTC() error {
	r := m.RTC
	if err := m.checkRange("rtc.minPort", "rtc.maxPort", r.MinPort, r.MaxPort); err != nil {
		return err
	}
	if r.MinPort == 0 {
		return m.bad("rtc.minPort", "0", "is not a port")
	}
	if len(r.Listen) == 0 {
		return m.bad("rtc.listen", "", "needs at least one address")
	}
	for i, l := range r.Listen {
		if err := m.validateListen(fmt.Sprintf("rtc.listen[%d].", i), l); err != nil {
			return err
		}
	}
	return nil
}

// checkRange rejects lo > hi and a range with only one end set.
func (m *Media) checkRange(loField, hiField string, lo, hi uint16) error {
	switch {
	case lo == 0 && hi != 0:
		return m.bad(loField, "", "is missing while the maximum port is set")
	case lo != 0 && hi == 0:
		return m.bad(hiField, "", "is missing while the minimum port is set")
	case lo > hi:
		return m.bad(loField, strconv.Itoa(int(lo)), fmt.Sprintf("is above the maximum port %d", hi))
	}
	return nil
}

func (m *Media) validateListen(field string, l Listen) error {
	switch l.Protocol {
	case "", "udp", "tcp":
	default:
		return m.bad(field+"protocol", strconv.Quote(l.Protocol), "is not udp or tcp")
	}
	if l.IP == "" {
		return m.bad(field+"ip", "", "is missing")
	}
	if _, err := netip.ParseAddr(l.IP); err != nil {
		return m.bad(field+"ip", strconv.Quote(l.IP), "is not an IP address")
	}
	if l.AnnouncedIP != "" {
		if a, err := netip.ParseAddr(l.AnnouncedIP); err != nil || a.IsUnspecified() {
			return m.bad(field+"announcedIp", strconv.Quote(l.AnnouncedIP), "is not an IP address (leave it empty to detect the host's)")
		}
	}
	if m.RTC.WebRtcServer && l.Port == 0 {
		return m.bad(field+"port", "", "is missing: MediasoupStartupSettings.UseWebRtcServer needs a fixed port")
	}
	return m.checkRange(field+"minPort", field+"maxPort", l.MinPort, l.MaxPort)
}

func (m *Media) validateCodecs() error {
	if len(m.Codecs) == 0 {
		return m.bad("codecs", "", "has no codec")
	}
	kinds := map[string]bool{}
	byPayloadType := map[uint8]int{}
	for i, c := range m.Codecs {
		field := fmt.Sprintf("codecs[%d].", i)
		if err := m.validateCodec(field, c); err != nil {
			return err
		}
		kinds[c.Kind] = true
		if pt := c.PreferredPayloadType; pt != 0 {
			if j, dup := byPayloadType[pt]; dup {
				return m.bad(field+"preferredPayloadType", strconv.Itoa(int(pt)), "is already taken by "+m.pathOf(fmt.Sprintf("codecs[%d]", j)))
			}
			byPayloadType[pt] = i
		}
	}
	for _, kind := range []string{"audio", "video"} {
		if !kinds[kind] {
			return m.bad("codecs", "", "has no "+kind+" codec")
		}
	}
	return nil
}

func (m *Media) validateCodec(field string, c Codec) error {
	if c.Kind != "audio" && c.Kind != "video" {
		return m.bad(field+"kind", strconv.Quote(c.Kind), "is not audio or video")
	}
	canon, known := canonicalMimeType(c.MimeType)
	switch {
	case !known || canon != c.MimeType:
		return m.bad(field+"mimeType", strconv.Quote(c.MimeType), "is not a supported codec ("+strings.Join(mimeTypes(), ", ")+")")
	case !strings.HasPrefix(c.MimeType, c.Kind+"/"):
		return m.bad(field+"mimeType", strconv.Quote(c.MimeType), "does not match the kind "+strconv.Quote(c.Kind))
	case c.ClockRate == 0:
		return m.bad(field+"clockRate", "0", "is not a clock rate")
	case c.Kind == "audio" && c.Channels == 0:
		return m.bad(field+"channels", "0", "is not a channel count")
	case c.Kind == "video" && c.Channels != 0:
		return m.bad(field+"channels", strconv.Itoa(int(c.Channels)), "is set on a video codec")
	}
	if pt := c.PreferredPayloadType; pt != 0 && (pt < 96 || pt > 127) {
		if static, ok := staticPayloadType(c.MimeType); !ok || pt != static {
			return m.bad(field+"preferredPayloadType", strconv.Itoa(int(pt)), "is not a dynamic payload type (96-127)")
		}
	}
	for j, f := range c.RTCPFeedback {
		if f.Type == "" {
			return m.bad(fmt.Sprintf("%srtcpFeedback[%d].type", field, j), "", "is missing")
		}
	}
	return nil
}

func (m *Media) validateBitrate() error {
	b := m.Bitrate
	switch {
	case b.InitialAvailableOutgoing <= 0:
		return m.bad("bitrate.initialAvailableOutgoing", strconv.Itoa(b.InitialAvailableOutgoing), "is not a bit rate")
	case b.MaxIncoming < 0:
		return m.bad("bitrate.maxIncoming", strconv.Itoa(b.MaxIncoming), "is not a bit rate")
	case b.MaxOutgoing < 0:
		return m.bad("bitrate.maxOutgoing", strconv.Itoa(b.MaxOutgoing), "is not a bit rate")
	}
	return nil
}

// mimeTypes lists the codecs the SFU can forward, canonically spelled.
func mimeTypes() []string {
	return []string{"audio/opus", "audio/PCMA", "audio/PCMU", "audio/G722",
		"video/VP8", "video/VP9", "video/H264", "video/AV1"}
}

// canonicalMimeType finds s (any letter case, as in mediasoup) among mimeTypes.
func canonicalMimeType(s string) (string, bool) {
	for _, t := range mimeTypes() {
		if strings.EqualFold(s, t) {
			return t, true
		}
	}
	return "", false
}

// staticPayloadType is the RFC 3551 payload type of a codec that has one.
func staticPayloadType(mimeType string) (uint8, bool) {
	switch mimeType {
	case "audio/PCMU":
		return 0, true
	case "audio/PCMA":
		return 8, true
	case "audio/G722":
		return 9, true
	}
	return 0, false
}
