package config

import (
	"maps"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Environment variables that override the file, for containers whose file is mounted
// read-only and shared between hosts.
const (
	EnvAnnouncedIP = "VCLASS_ANNOUNCED_IP" // AnnouncedIP of every Listen; 0.0.0.0 = detect
	EnvHTTPAddr    = "VCLASS_HTTP_ADDR"    // HTTPAddr, e.g. ":8011"
	EnvRTCPorts    = "VCLASS_RTC_PORTS"    // "20000-20009", or "20000" for one port
	EnvLogLevel    = "VCLASS_LOG_LEVEL"    // LogLevel: debug, info, warn, error or none
	// EnvAuthSecret and EnvAuthPreviousSecret replace AuthSettings.Secret and
	// PreviousSecret (secrets belong in the environment, not in a file).
	EnvAuthSecret         = "VCLASS_AUTH_SECRET"
	EnvAuthPreviousSecret = "VCLASS_AUTH_PREVIOUS_SECRET"
	// EnvAPIKey replaces AuthSettings.ApiKey, the portal API's bearer key.
	EnvAPIKey = "VCLASS_API_KEY"
	// EnvWebhookURL and EnvWebhookSecret replace WebhookSettings.Url and Secret.
	EnvWebhookURL    = "VCLASS_WEBHOOK_URL"
	EnvWebhookSecret = "VCLASS_WEBHOOK_SECRET"
	// EnvRedisURL, EnvNodeID and EnvPublicURL make the node one of a cluster.
	EnvRedisURL  = "VCLASS_REDIS_URL"
	EnvNodeID    = "VCLASS_NODE_ID"
	EnvPublicURL = "VCLASS_PUBLIC_URL"
	// EnvInternalURL is how the other nodes reach this node's HTTP API.
	EnvInternalURL = "VCLASS_INTERNAL_URL"
)

// ApplyEnv overrides m from the environment (getenv is os.Getenv outside tests); unset or
// empty variables change nothing. A bad value is a *KeyError whose Path is the variable.
func (m *Media) ApplyEnv(getenv func(string) string) error {
	// A copy of m shares these; write to our own.
	m.origin = maps.Clone(m.origin)
	m.RTC.Listen = slices.Clone(m.RTC.Listen)
	if m.origin == nil {
		m.origin = make(map[string]string)
	}
	if v := strings.TrimSpace(getenv(EnvAnnouncedIP)); v != "" {
		if err := m.applyAnnouncedIP(v); err != nil {
			return err
		}
	}
	if v := strings.TrimSpace(getenv(EnvLogLevel)); v != "" {
		m.LogLevel = strings.ToLower(v)
		m.note("logLevel", EnvLogLevel)
	}
	if v := strings.TrimSpace(getenv(EnvHTTPAddr)); v != "" {
		m.HTTPAddr = v
		m.note("httpAddr", EnvHTTPAddr)
	}
	if v := strings.TrimSpace(getenv(EnvRTCPorts)); v != "" {
		if err := m.applyRTCPorts(v); err != nil {
			return err
		}
	}
	if cur, prev := strings.TrimSpace(getenv(EnvAuthSecret)), strings.TrimSpace(getenv(EnvAuthPreviousSecret)); cur != "" || prev != "" {
		m.TicketSecrets = nil
		for _, s := range []struct{ value, env string }{{cur, EnvAuthSecret}, {prev, EnvAuthPreviousSecret}} {
			if s.value != "" {
				m.note("ticketSecrets["+strconv.Itoa(len(m.TicketSecrets))+"]", s.env)
				m.TicketSecrets = append(m.TicketSecrets, s.value)
			}
		}
	}
	if v := strings.TrimSpace(getenv(EnvWebhookURL)); v != "" {
		m.WebhookURL = v
		m.note("webhookUrl", EnvWebhookURL)
	}
	if v := strings.TrimSpace(getenv(EnvWebhookSecret)); v != "" {
		m.WebhookSecret = v
	}
	if v := strings.TrimSpace(getenv(EnvAPIKey)); v != "" {
		m.APIKeys = []string{v}
		m.note("apiKeys[0]", EnvAPIKey)
	}
	if err := m.applyCluster(getenv); err != nil {
		return err
	}
	if err := m.applyLimitsEnv(getenv); err != nil {
		return err
	}
	return m.Validate()
}

func (m *Media) applyCluster(getenv func(string) string) error {
	c := Cluster{
		RedisURL:    strings.TrimSpace(getenv(EnvRedisURL)),
		NodeID:      strings.TrimSpace(getenv(EnvNodeID)),
		PublicURL:   strings.TrimSpace(getenv(EnvPublicURL)),
		InternalURL: strings.TrimSpace(getenv(EnvInternalURL)),
	}
	if c.RedisURL == "" {
		return nil
	}
	if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return &KeyError{Path: EnvRedisURL, Value: strconv.Quote(c.RedisURL), Reason: "is not a redis://host:port/db URL"}
	}
	if c.NodeID == "" {
		c.NodeID, _ = os.Hostname()
	}
	if c.NodeID == "" {
		return &KeyError{Path: EnvNodeID, Reason: "a node of a cluster needs an id"}
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return &KeyError{Path: EnvPublicURL, Value: strconv.Quote(c.PublicURL), Reason: "must be the node's WebSocket URL as clients reach it (wss://host/path/ws) when " + EnvRedisURL + " is set"}
	}
	if c.InternalURL != "" {
		if u, err := url.Parse(c.InternalURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return &KeyError{Path: EnvInternalURL, Value: strconv.Quote(c.InternalURL), Reason: "must be an http://host:port URL"}
		}
	}
	m.Cluster = c
	return nil
}

func (m *Media) applyAnnouncedIP(v string) error {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return &KeyError{Path: EnvAnnouncedIP, Value: strconv.Quote(v), Reason: "is not an IP address"}
	}
	if a.IsUnspecified() {
		v = ""
	}
	for i := range m.RTC.Listen {
		m.RTC.Listen[i].AnnouncedIP = v
		m.note("rtc.listen["+strconv.Itoa(i)+"].announcedIp", EnvAnnouncedIP)
	}
	return nil
}

// applyRTCPorts sets the range and drops per-listen PortRanges, so that the variable alone
// decides which ports ICE uses.
func (m *Media) applyRTCPorts(v string) error {
	bad := &KeyError{Path: EnvRTCPorts, Value: strconv.Quote(v), Reason: "is not a port range like 20000-20009 or a port like 20000"}
	loText, hiText, isRange := strings.Cut(v, "-")
	lo, err := strconv.ParseUint(strings.TrimSpace(loText), 10, 16)
	if err != nil || lo == 0 {
		return bad
	}
	hi := lo
	if isRange {
		if hi, err = strconv.ParseUint(strings.TrimSpace(hiText), 10, 16); err != nil || hi == 0 {
			return bad
		}
	}
	m.RTC.MinPort, m.RTC.MaxPort = uint16(lo), uint16(hi)
	m.note("rtc.minPort", EnvRTCPorts)
	m.note("rtc.maxPort", EnvRTCPorts)
	for i := range m.RTC.Listen {
		m.RTC.Listen[i].MinPort, m.RTC.Listen[i].MaxPort = 0, 0
	}
	return nil
}
