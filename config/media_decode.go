package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// decodeMedia maps the parsed mediasoup_config.json onto Media. It checks what only the file
// can show (types, ranges that do not fit the field, sections given twice); Validate checks
// the rest on the struct.
func decodeMedia(root *node) (*Media, error) {
	m := &Media{
		HTTPAddr:  defaultHTTPAddr,
		LogLevel:  defaultLogLevel,
		ServeMode: ServeOpen,
		RTC:       RTC{MinPort: defaultMinPort, MaxPort: defaultMaxPort},
		Bitrate:   Bitrate{InitialAvailableOutgoing: defaultInitialOutgoing},
		origin:    make(map[string]string),
	}
	startup, err := root.object("MediasoupStartupSettings")
	if err != nil {
		return nil, err
	}
	if err := startup.optBool("UseWebRtcServer", &m.RTC.WebRtcServer); err != nil {
		return nil, err
	}
	ms, err := root.object("MediasoupSettings")
	if err != nil {
		return nil, err
	}
	steps := []func() error{
		func() error { return decodeWorker(m, ms) },
		func() error { return decodeCodecs(m, ms) },
		func() error { return decodeTransport(m, ms) },
		func() error { return decodeMeeting(m, root, ms) },
		func() error { return decodeMediaLimits(m, root, ms) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// pickObject returns the object at key in a or in b (either may be nil): the shapes differ
// in where a section sits. A section in both places is an error rather than a guess.
func pickObject(a, b *node, key string) (*node, error) {
	inA, err := a.object(key)
	if err != nil {
		return nil, err
	}
	inB, err := b.object(key)
	if err != nil {
		return nil, err
	}
	if inA != nil && inB != nil {
		return nil, &KeyError{Path: inB.path(), Reason: "is also given at " + inA.path() + "; keep one"}
	}
	if inA != nil {
		return inA, nil
	}
	return inB, nil
}

// readPort sets *dst from a port at key; lo is 0 where 0 means "any".
func readPort(n *node, key string, lo int64, dst *uint16) error {
	v := n.lookup(key)
	if v.unset() {
		return nil
	}
	if v.kind != numberNode && v.kind != stringNode {
		return v.typeError("a port number")
	}
	i, err := v.intValue(math.MinInt64, math.MaxInt64)
	if err != nil || i < lo || i > math.MaxUint16 {
		return v.valueError("is not a port")
	}
	*dst = uint16(i)
	return nil
}

func decodeWorker(m *Media, ms *node) error {
	ws, err := ms.object("WorkerSettings")
	if err != nil {
		return err
	}
	var level string
	if err := ws.optString("LogLevel", &level); err != nil {
		return err
	}
	if level = strings.TrimSpace(level); level != "" {
		m.LogLevel = strings.ToLower(level)
		m.note("logLevel", ws.keyPath("LogLevel"))
	}
	if err := readPort(ws, "RtcMinPort", 1, &m.RTC.MinPort); err != nil {
		return err
	}
	if err := readPort(ws, "RtcMaxPort", 1, &m.RTC.MaxPort); err != nil {
		return err
	}
	m.note("rtc.minPort", ws.keyPath("RtcMinPort"))
	m.note("rtc.maxPort", ws.keyPath("RtcMaxPort"))
	return nil
}

func decodeCodecs(m *Media, ms *node) error {
	rs, err := ms.object("RouterSettings")
	if err != nil {
		return err
	}
	list, err := rs.array("RtpCodecCapabilities")
	if err != nil {
		return err
	}
	if list == nil {
		m.note("codecs", "MediasoupSettings.RouterSettings.RtpCodecCapabilities")
		return nil
	}
	m.note("codecs", list.path())
	for i, item := range list.elements() {
		c, err := decodeCodec(m, i, item)
		if err != nil {
			return err
		}
		m.Codecs = append(m.Codecs, c)
	}
	return nil
}

func decodeCodec(m *Media, i int, item *node) (Codec, error) {
	var c Codec
	if item.kind != objectNode {
		return c, item.typeError("an object")
	}
	field := fmt.Sprintf("codecs[%d].", i)
	if err := item.optString("Kind", &c.Kind); err != nil {
		return c, err
	}
	c.Kind = strings.ToLower(strings.TrimSpace(c.Kind))
	if err := item.optString("MimeType", &c.MimeType); err != nil {
		return c, err
	}
	c.MimeType = strings.TrimSpace(c.MimeType)
	if canon, ok := canonicalMimeType(c.MimeType); ok {
		c.MimeType = canon
	}
	if err := optInt(item, "ClockRate", 0, math.MaxUint32, &c.ClockRate); err != nil {
		return c, err
	}
	if c.Kind == "audio" { // mediasoup drops Channels of video codecs; we leave it unread
		c.Channels = 1
		if err := optInt(item, "Channels", 0, math.MaxUint16, &c.Channels); err != nil {
			return c, err
		}
	}
	if err := optInt(item, "PreferredPayloadType", 0, math.MaxUint8, &c.PreferredPayloadType); err != nil {
		return c, err
	}
	params, err := item.object("Parameters")
	if err != nil {
		return c, err
	}
	for _, p := range params.allMembers() {
		s, err := p.scalarText()
		if err != nil {
			return c, err
		}
		if c.Parameters == nil {
			c.Parameters = make(map[string]string)
		}
		c.Parameters[p.key] = s
	}
	if c.RTCPFeedback, err = decodeFeedback(m, field, c.Kind, item); err != nil {
		return c, err
	}
	m.note(strings.TrimSuffix(field, "."), item.path())
	for _, f := range []struct{ field, key string }{
		{"kind", "Kind"}, {"mimeType", "MimeType"}, {"clockRate", "ClockRate"},
		{"channels", "Channels"}, {"preferredPayloadType", "PreferredPayloadType"},
	} {
		m.note(field+f.field, item.keyPath(f.key))
	}
	return c, nil
}

// decodeFeedback reads RtcpFeedback; absent or null means the defaults for the kind, while an
// empty list means none.
func decodeFeedback(m *Media, field, kind string, item *node) ([]Feedback, error) {
	list, err := item.array("RtcpFeedback")
	if err != nil || list == nil {
		return defaultFeedback(kind), err
	}
	out := []Feedback{}
	for j, e := range list.elements() {
		if e.kind != objectNode {
			return nil, e.typeError("an object")
		}
		var f Feedback
		if err := e.optString("Type", &f.Type); err != nil {
			return nil, err
		}
		if err := e.optString("Parameter", &f.Parameter); err != nil {
			return nil, err
		}
		f.Type, f.Parameter = strings.TrimSpace(f.Type), strings.TrimSpace(f.Parameter)
		m.note(fmt.Sprintf("%srtcpFeedback[%d].type", field, j), e.keyPath("Type"))
		out = append(out, f)
	}
	return out, nil
}

func decodeTransport(m *Media, ms *node) error {
	limits, err := ms.object("ServerNetworkLimits")
	if err != nil {
		return err
	}
	// As shipped, WebRtcTransportSettings sits inside ServerNetworkLimits; upstream, beside it.
	wts, err := pickObject(ms, limits, "WebRtcTransportSettings")
	if err != nil {
		return err
	}
	if err := decodeBitrate(m, wts, limits); err != nil {
		return err
	}
	var list *node
	if m.RTC.WebRtcServer {
		list, err = serverListenList(ms)
	} else {
		list, err = listenList(wts)
	}
	if err != nil {
		return err
	}
	if list == nil {
		// mediasoup would refuse to start; all interfaces is what every shipped file says.
		m.RTC.Listen = []Listen{{IP: "0.0.0.0"}}
		return nil
	}
	m.note("rtc.listen", list.path())
	for i, e := range list.elements() {
		l, err := decodeListen(m, i, e)
		if err != nil {
			return err
		}
		m.RTC.Listen = append(m.RTC.Listen, l)
	}
	spanListenRanges(m, ms)
	return nil
}

// serverListenList returns WebRtcServerSettings.ListenInfos, which a WebRtcServer needs:
// without it there is no fixed port to listen on.
func serverListenList(ms *node) (*node, error) {
	const why = "is missing, but MediasoupStartupSettings.UseWebRtcServer is true"
	srv, err := ms.object("WebRtcServerSettings")
	if err != nil {
		return nil, err
	}
	if srv == nil {
		path := "MediasoupSettings.WebRtcServerSettings"
		if ms != nil {
			path = ms.keyPath("WebRtcServerSettings")
		}
		return nil, &KeyError{Path: path, Reason: why}
	}
	list, err := srv.array("ListenInfos")
	if err == nil && list == nil {
		err = &KeyError{Path: srv.keyPath("ListenInfos"), Reason: why}
	}
	return list, err
}

// listenList returns ListenIps (older shape) or ListenInfos (newer shape).
func listenList(wts *node) (*node, error) {
	ips, err := wts.array("ListenIps")
	if err != nil {
		return nil, err
	}
	infos, err := wts.array("ListenInfos")
	if err != nil {
		return nil, err
	}
	if ips != nil && infos != nil {
		return nil, &KeyError{Path: infos.path(), Reason: "is also given as " + ips.path() + "; keep one"}
	}
	if ips != nil {
		return ips, nil
	}
	return infos, nil
}

func decodeListen(m *Media, i int, e *node) (Listen, error) {
	field := fmt.Sprintf("rtc.listen[%d].", i)
	if e.kind == stringNode { // mediasoup also takes a bare IP string in ListenIps
		m.note(field+"ip", e.path())
		return Listen{IP: strings.TrimSpace(e.text)}, nil
	}
	var l Listen
	if e.kind != objectNode {
		return l, e.typeError("an object")
	}
	if err := e.optString("Protocol", &l.Protocol); err != nil {
		return l, err
	}
	l.Protocol = strings.ToLower(strings.TrimSpace(l.Protocol))
	if err := e.optString("Ip", &l.IP); err != nil {
		return l, err
	}
	l.IP = strings.TrimSpace(l.IP)
	announcedKey, err := readAnnounced(e, &l.AnnouncedIP)
	if err != nil {
		return l, err
	}
	if err := readPort(e, "Port", 0, &l.Port); err != nil {
		return l, err
	}
	pr, err := e.object("PortRange")
	if err != nil {
		return l, err
	}
	if err := readPort(pr, "Min", 1, &l.MinPort); err != nil {
		return l, err
	}
	if err := readPort(pr, "Max", 1, &l.MaxPort); err != nil {
		return l, err
	}
	m.note(field+"protocol", e.keyPath("Protocol"))
	m.note(field+"ip", e.keyPath("Ip"))
	m.note(field+"announcedIp", e.keyPath(announcedKey))
	m.note(field+"port", e.keyPath("Port"))
	m.note(field+"minPort", pr.keyPath("Min"))
	m.note(field+"maxPort", pr.keyPath("Max"))
	return l, nil
}

// readAnnounced reads AnnouncedIp or its newer name AnnouncedAddress and returns the key it
// used. "0.0.0.0", "::" and null mean "detect", stored as "".
func readAnnounced(e *node, dst *string) (string, error) {
	key := "AnnouncedIp"
	if e.lookup("AnnouncedAddress") != nil {
		if e.lookup(key) != nil {
			return "", &KeyError{Path: e.keyPath("AnnouncedAddress"), Reason: "is also given as " + e.keyPath(key) + "; keep one"}
		}
		key = "AnnouncedAddress"
	}
	if err := e.optString(key, dst); err != nil {
		return "", err
	}
	*dst = strings.TrimSpace(*dst)
	if *dst == "0.0.0.0" || *dst == "::" {
		*dst = ""
	}
	return key, nil
}

// spanListenRanges sets the RTC range from the listens' PortRanges when WorkerSettings gives
// no ports: newer mediasoup moved the range there.
func spanListenRanges(m *Media, ms *node) {
	ws := ms.lookup("WorkerSettings")
	if ws.lookup("RtcMinPort") != nil || ws.lookup("RtcMaxPort") != nil {
		return
	}
	lo, hi := uint16(math.MaxUint16), uint16(0)
	for _, l := range m.RTC.Listen {
		if l.MinPort == 0 || l.MaxPort == 0 {
			return
		}
		lo, hi = min(lo, l.MinPort), max(hi, l.MaxPort)
	}
	m.RTC.MinPort, m.RTC.MaxPort = lo, hi
	m.note("rtc.minPort", m.pathOf("rtc.listen[0].minPort"))
	m.note("rtc.maxPort", m.pathOf("rtc.listen[0].maxPort"))
}

func decodeBitrate(m *Media, wts, limits *node) error {
	b := &m.Bitrate
	if err := optInt(wts, "InitialAvailableOutgoingBitrate", 0, math.MaxInt32, &b.InitialAvailableOutgoing); err != nil {
		return err
	}
	m.note("bitrate.initialAvailableOutgoing", wts.keyPath("InitialAvailableOutgoingBitrate"))
	var transportIn, limitIn int
	if err := optInt(wts, "MaximumIncomingBitrate", 0, math.MaxInt32, &transportIn); err != nil {
		return err
	}
	if err := limits.optString("ThrottlingStrategy", &b.Throttling); err != nil {
		return err
	}
	b.Throttling = strings.TrimSpace(b.Throttling)
	// Under NoThrottling the per-transport limits are left unread, so they show up as
	// ignored keys: an operator sees they have no effect.
	if !strings.EqualFold(b.Throttling, "NoThrottling") {
		if err := optInt(limits, "MaximumIncomingBitRatePerTransport", 0, math.MaxInt32, &limitIn); err != nil {
			return err
		}
		if err := optInt(limits, "MaximumOutgoingBitRatePerTransport", 0, math.MaxInt32, &b.MaxOutgoing); err != nil {
			return err
		}
	}
	b.MaxIncoming = transportIn
	m.note("bitrate.maxIncoming", wts.keyPath("MaximumIncomingBitrate"))
	if limitIn != 0 && (transportIn == 0 || limitIn < transportIn) {
		b.MaxIncoming = limitIn
		m.note("bitrate.maxIncoming", limits.keyPath("MaximumIncomingBitRatePerTransport"))
	}
	m.note("bitrate.maxOutgoing", limits.keyPath("MaximumOutgoingBitRatePerTransport"))
	return nil
}

func decodeMeeting(m *Media, root, ms *node) error {
	// Upstream puts these sections at the root; the shipped file inside MediasoupSettings.
	meeting, err := pickObject(root, ms, "MeetingServerSettings")
	if err != nil {
		return err
	}
	var mode string
	if err := meeting.optString("ServeMode", &mode); err != nil {
		return err
	}
	if mode = strings.TrimSpace(mode); mode != "" {
		m.ServeMode = canonicalServeMode(mode)
		m.note("serveMode", meeting.keyPath("ServeMode"))
	}
	auth, err := pickObject(root, ms, "AuthSettings")
	if err != nil {
		return err
	}
	if err := auth.optBool("AllowEmptyTickets", &m.AllowEmptyTickets); err != nil {
		return err
	}
	m.note("allowEmptyTickets", auth.keyPath("AllowEmptyTickets"))
	hooks, err := pickObject(root, ms, "WebhookSettings")
	if err != nil {
		return err
	}
	if err := hooks.optString("Url", &m.WebhookURL); err != nil {
		return err
	}
	m.note("webhookUrl", hooks.keyPath("Url"))
	if err := hooks.optString("Secret", &m.WebhookSecret); err != nil {
		return err
	}
	var apiKey string
	if err := auth.optString("ApiKey", &apiKey); err != nil {
		return err
	}
	if apiKey != "" {
		m.APIKeys = []string{apiKey}
		m.note("apiKeys[0]", auth.keyPath("ApiKey"))
	}
	for i, key := range []string{"Secret", "PreviousSecret"} {
		var secret string
		if err := auth.optString(key, &secret); err != nil {
			return err
		}
		if secret != "" {
			m.TicketSecrets = append(m.TicketSecrets, secret)
			m.note("ticketSecrets["+strconv.Itoa(i)+"]", auth.keyPath(key))
		}
	}
	return nil
}

// canonicalServeMode spells a known mode canonically and leaves others for Validate to reject.
func canonicalServeMode(s string) ServeMode {
	for _, mode := range []ServeMode{ServeOpen, ServePull, ServeInvite} {
		if strings.EqualFold(s, string(mode)) {
			return mode
		}
	}
	return ServeMode(s)
}
