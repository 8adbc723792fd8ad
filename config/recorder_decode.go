package config

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// decodeRecorder fills r (holding the defaults) from the parsed config.json. It checks what
// only the file can show (types, values that do not parse); Validate checks the rest.
func decodeRecorder(r *Recorder, root *node, configDir string) error {
	service, err := root.object("Service")
	if err != nil {
		return err
	}
	recording, err := root.object("Recording")
	if err != nil {
		return err
	}
	steps := []func() error{
		func() error { return decodeEndpoint(r, service, configDir) },
		func() error { return decodeService(r, service) },
		func() error { return decodeRateLimiting(r, service) },
		func() error { return decodeLogging(r, root) },
		func() error { return decodeMediaSection(r, root) },
		func() error { return decodeRecording(r, recording) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// endpoint returns the Kestrel endpoint the recorder listens on: EndPoints.Https, or the only
// endpoint whatever its name. Other endpoints are left unread, so they show as ignored.
func endpoint(kestrel *node) (*node, error) {
	eps, err := kestrel.object("EndPoints")
	if err != nil || eps == nil {
		return nil, err
	}
	if eps.fold[foldKey("Https")] != nil {
		return eps.object("Https")
	}
	switch len(eps.members) {
	case 0:
		return nil, nil
	case 1:
		return eps.object(eps.members[0].key)
	}
	names := make([]string, len(eps.members))
	for i, m := range eps.members {
		names[i] = m.key
	}
	return nil, &KeyError{Path: eps.path(), Reason: "has the endpoints " + strings.Join(names, ", ") +
		" but no Https; vclass-recorder listens on one: name it Https or keep one"}
}

func decodeEndpoint(r *Recorder, service *node, configDir string) error {
	kestrel, err := service.object("Kestrel")
	if err != nil {
		return err
	}
	ep, err := endpoint(kestrel)
	if err != nil {
		return err
	}
	if v := ep.lookup("Url"); !v.unset() {
		s, err := v.scalarText()
		if err != nil {
			return err
		}
		r.URL = strings.TrimSpace(s)
		if r.ListenAddr, r.TLS, err = parseListenURL(r.URL); err != nil {
			return v.valueError(err.Error())
		}
	}
	r.note(keyURL, ep.keyPath("Url"))
	cert, err := ep.object("Certificate")
	if err != nil {
		return err
	}
	r.note(keyCertPath, childKeyPath(ep, cert, "Certificate", "Path"))
	c := &r.Certificate
	for _, err := range []error{
		cert.optString("Path", &c.Path),
		cert.optString("Password", &c.Password),
		cert.optBool("AllowInvalid", &c.AllowInvalid),
	} {
		if err != nil {
			return err
		}
	}
	c.Path = resolvePath(configDir, strings.TrimSpace(c.Path))
	return decodeLimits(r, kestrel)
}

func decodeLimits(r *Recorder, kestrel *node) error {
	limits, err := kestrel.object("Limits")
	if err != nil {
		return err
	}
	l := &r.Limits
	for _, err := range []error{
		optInt(limits, "MaxConcurrentConnections", math.MinInt32, math.MaxInt32, &l.MaxConcurrentConnections),
		optInt(limits, "MaxRequestBodySize", math.MinInt64, math.MaxInt64, &l.MaxRequestBodySize),
		optInt(limits, "MaxRequestHeaderCount", math.MinInt32, math.MaxInt32, &l.MaxRequestHeaderCount),
	} {
		if err != nil {
			return err
		}
	}
	for _, key := range []string{"MaxConcurrentConnections", "MaxRequestBodySize", "MaxRequestHeaderCount"} {
		r.note(keyLimitsPrefix+key, limits.keyPath(key))
	}
	for key, dst := range map[string]*time.Duration{"RequestHeadersTimeout": &l.RequestHeadersTimeout, "KeepAliveTimeout": &l.KeepAliveTimeout} {
		if err := optTimeSpan(limits, key, dst); err != nil {
			return err
		}
	}
	return nil
}

// decodeRateLimiting reads Service.RateLimiting (a vclass key: Kestrel has
// no per-address limit).
func decodeRateLimiting(r *Recorder, service *node) error {
	rl, err := service.object("RateLimiting")
	if err != nil || rl == nil {
		return err
	}
	l := &r.Limits
	if err := rl.optFloat("RequestsPerSecondPerIp", &l.RequestsPerSecondPerIP); err != nil {
		return err
	}
	if l.RequestsPerSecondPerIP < 0 {
		return rl.lookup("RequestsPerSecondPerIp").valueError("is negative (0 means no limit)")
	}
	if err := optInt(rl, "BurstPerIp", 0, math.MaxInt32, &l.BurstPerIP); err != nil {
		return err
	}
	return optPrefixes(rl, "TrustedProxies", &l.TrustedProxies)
}

// optTimeSpan sets *dst from a .NET TimeSpan at key: [d.]hh:mm[:ss[.fff]].
func optTimeSpan(n *node, key string, dst *time.Duration) error {
	v := n.lookup(key)
	if v.unset() {
		return nil
	}
	s, err := v.scalarText()
	if err != nil {
		return err
	}
	d, ok := parseTimeSpan(strings.TrimSpace(s))
	if !ok {
		return v.valueError("is not a TimeSpan like \"00:00:30\"")
	}
	*dst = d
	return nil
}

func parseTimeSpan(s string) (time.Duration, bool) {
	var days int64
	if dot, colon := strings.IndexByte(s, '.'), strings.IndexByte(s, ':'); dot >= 0 && colon > dot {
		n, err := strconv.ParseInt(s[:dot], 10, 32)
		if err != nil || n < 0 {
			return 0, false
		}
		days, s = n, s[dot+1:]
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, false
	}
	h, err1 := strconv.ParseUint(parts[0], 10, 8)
	m, err2 := strconv.ParseUint(parts[1], 10, 8)
	if err1 != nil || err2 != nil || h > 23 || m > 59 {
		return 0, false
	}
	var sec float64
	if len(parts) == 3 {
		f, err := strconv.ParseFloat(parts[2], 64)
		if err != nil || f < 0 || f >= 60 || strings.ContainsAny(parts[2], "eE+-") {
			return 0, false
		}
		sec = f
	}
	return time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(sec*float64(time.Second)), true
}

func decodeService(r *Recorder, service *node) error {
	creds, err := readCredentials(service, &r.Admin)
	if err != nil {
		return err
	}
	r.note(keyAdminUser, childKeyPath(service, creds, "Credentials", "Username"))
	r.note(keyAdminPass, childKeyPath(service, creds, "Credentials", "Password"))
	return nil
}

// readCredentials reads the Credentials object of n into dst and returns it (nil if absent).
func readCredentials(n *node, dst *Credentials) (*node, error) {
	creds, err := n.object("Credentials")
	if err != nil {
		return nil, err
	}
	if err := creds.optString("Username", &dst.Username); err != nil {
		return nil, err
	}
	return creds, creds.optString("Password", &dst.Password)
}

// childKeyPath names key inside the object section of parent: as spelled in the file when
// the section is there (obj), else after the parent's spelling; "" when neither is.
func childKeyPath(parent, obj *node, section, key string) string {
	if obj != nil {
		return obj.keyPath(key)
	}
	if parent != nil {
		return parent.keyPath(section) + "." + key
	}
	return ""
}

func decodeLogging(r *Recorder, root *node) error {
	logging, err := root.object("Logging")
	if err != nil {
		return err
	}
	var dir string
	if err := logging.optString("LogDir", &dir); err != nil {
		return err
	}
	if dir = strings.TrimSpace(dir); dir != "" {
		r.LogDir = resolvePath(r.baseDir, dir)
	}
	r.note(keyLogDir, logging.keyPath("LogDir"))
	return logging.optBool("DebugMode", &r.Debug)
}

func decodeMediaSection(r *Recorder, root *node) error {
	media, err := root.object("Media")
	if err != nil {
		return err
	}
	if v := media.lookup("Url"); !v.unset() {
		s, err := v.scalarText()
		if err != nil {
			return err
		}
		if r.MediaURL, err = normalizeMediaURL(strings.TrimSpace(s)); err != nil {
			return v.valueError(err.Error())
		}
	}
	r.note(keyMediaURL, media.keyPath("Url"))
	r.note(keyAuthSecret, media.keyPath("AuthSecret"))
	return media.optString("AuthSecret", &r.AuthSecret)
}

func decodeRecording(r *Recorder, recording *node) error {
	var dir string
	if err := recording.optString("RecordingDir", &dir); err != nil {
		return err
	}
	if dir = strings.TrimSpace(dir); dir != "" {
		r.RecordingDir = resolvePath(r.baseDir, dir)
	}
	r.note(keyRecordingDir, recording.keyPath("RecordingDir"))
	if err := readMillis(recording, "JoinTimeout", &r.JoinTimeout); err != nil {
		return err
	}
	r.note(keyJoinTimeout, recording.keyPath("JoinTimeout"))
	clients, err := recording.array("Clients")
	if err != nil {
		return err
	}
	for i, item := range clients.elements() {
		c, err := decodeClient(r, i, item)
		if err != nil {
			return err
		}
		r.Clients = append(r.Clients, c)
	}
	return nil
}

func decodeClient(r *Recorder, i int, item *node) (RecorderClient, error) {
	c := RecorderClient{Slots: 1, RecordingDir: r.RecordingDir}
	if item.kind != objectNode {
		return c, item.typeError("an object")
	}
	var creds Credentials
	credsNode, err := readCredentials(item, &creds)
	if err != nil {
		return c, err
	}
	c.Username, c.Password = creds.Username, creds.Password
	r.note(clientKey(i, "Credentials.Username"), childKeyPath(item, credsNode, "Credentials", "Username"))
	r.note(clientKey(i, "Credentials.Password"), childKeyPath(item, credsNode, "Credentials", "Password"))
	if v := item.lookup("Host"); !v.unset() {
		s, err := v.scalarText()
		if err != nil {
			return c, err
		}
		if c.Host, err = normalizeOrigin(strings.TrimSpace(s)); err != nil {
			return c, v.valueError(err.Error())
		}
	}
	if err := optInt(item, "Slots", math.MinInt32, math.MaxInt32, &c.Slots); err != nil {
		return c, err
	}
	var dir string
	if err := item.optString("RecordingDir", &dir); err != nil {
		return c, err
	}
	if dir = strings.TrimSpace(dir); dir != "" {
		c.RecordingDir = resolvePath(r.baseDir, dir)
	}
	for _, key := range []string{"Host", "Slots", "RecordingDir"} {
		r.note(clientKey(i, key), item.keyPath(key))
	}
	ff, err := item.object("FfmpegConfig")
	if err != nil {
		return c, err
	}
	c.Ffmpeg, err = decodeFfmpeg(ff)
	r.note(clientKey(i, "FfmpegConfig.StartDelay"), childKeyPath(item, ff, "FfmpegConfig", "StartDelay"))
	return c, err
}

// decodeFfmpeg reads a client's FfmpegConfig; a nil ff gives the zero Ffmpeg.
func decodeFfmpeg(ff *node) (Ffmpeg, error) {
	var f Ffmpeg
	if ff == nil {
		return f, nil
	}
	f.Compose = true
	if err := readMillis(ff, "StartDelay", &f.StartDelay); err != nil {
		return f, err
	}
	var err error
	if f.CommandOptions, err = readArgs(ff, "CommandOptions"); err != nil {
		return f, err
	}
	if f.CommandOutputOptions, err = readArgs(ff, "CommandOutputOptions"); err != nil {
		return f, err
	}
	return f, ff.optBool("Compose", &f.Compose)
}

// readArgs splits the command-line fragment at key into words; nil when absent or empty.
func readArgs(n *node, key string) ([]string, error) {
	v := n.lookup(key)
	if v == nil || v.kind == nullNode {
		return nil, nil
	}
	s, err := v.scalarText()
	if err != nil {
		return nil, err
	}
	args, err := splitCommandLine(s)
	if err != nil {
		return nil, v.valueError(err.Error())
	}
	return args, nil
}

// maxMillis is the longest duration, in milliseconds, a time.Duration holds.
const maxMillis = math.MaxInt64 / int64(time.Millisecond)

// readMillis sets *dst from a whole number of milliseconds at key, a number or a string
// ("4000"); an unset key leaves *dst alone. The sign is Validate's to check.
func readMillis(n *node, key string, dst *time.Duration) error {
	v := n.lookup(key)
	if v.unset() {
		return nil
	}
	ms, err := v.intValue(-maxMillis, maxMillis)
	if err != nil {
		return err
	}
	*dst = time.Duration(ms) * time.Millisecond
	return nil
}
