package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// Recorder is vclass-recorder's effective configuration, read from the config.json the
// .NET recorder it replaces was configured by (see docs/config.md).
//
// Paths follow one rule. Files the config points to (Certificate.Path) are relative to the
// config file's folder, as they are written next to it. Folders the recorder writes
// (RecordingDir, LogDir, a client's RecordingDir) are relative to baseDir, the service's
// working directory (the image's WORKDIR, /Websoft.Recording). So with the config at
// /Websoft.Recording/config/config.json and the working directory /Websoft.Recording,
// "../certs/recorder.pfx" is /Websoft.Recording/certs/recorder.pfx, "records" is
// /Websoft.Recording/records and "logs" is /Websoft.Recording/logs. Absolute paths stay as
// they are; every path is cleaned.
type Recorder struct {
	Source string `json:"source"` // the file it came from, "" for defaults
	// URL is Service.Kestrel.EndPoints.Https.Url as given; ListenAddr and TLS derive from it.
	URL string `json:"url"`
	// ListenAddr is URL's host and port as a Go listen address: ":8300" for the hosts *, +,
	// 0.0.0.0 and any name but localhost (all interfaces, as Kestrel binds them),
	// "127.0.0.1:9000", "[::1]:9". A URL without a port listens on 443 (https) or 80 (http).
	ListenAddr string `json:"listenAddr"`
	// TLS is true for an https URL. http is allowed behind a proxy; no certificate is needed.
	TLS         bool         `json:"tls"`
	Certificate Certificate  `json:"certificate"`
	Admin       Credentials  `json:"-"`      // Service.Credentials: sees every recording
	Limits      ServerLimits `json:"limits"` // Service.Kestrel.Limits
	LogDir      string       `json:"logDir"` // Logging.LogDir, absolute; default "logs"
	Debug       bool         `json:"debug"`  // Logging.DebugMode
	// RecordingDir is Recording.RecordingDir, absolute; default "records".
	RecordingDir string           `json:"recordingDir"`
	Clients      []RecorderClient `json:"clients"`
	// MediaURL is vclass-media's WebSocket (Media.Url): ws:// or wss://, path /ws unless
	// the file gives another; several, comma-separated, are tried in turn (the nodes of a
	// cluster: any of them sends the recorder to the room's node).
	MediaURL string `json:"mediaUrl"`
	// AuthSecret signs the recorder's join tickets (Media.AuthSecret, or env
	// VCLASS_AUTH_SECRET): the secret vclass-media verifies them with. Never printed.
	AuthSecret string `json:"-"`
	// RedisURL (env VCLASS_REDIS_URL) shares the clients' slots with the other
	// recorders on that Redis; empty: this recorder counts alone.
	RedisURL string `json:"-"`
	// JoinTimeout bounds joining a room (Recording.JoinTimeout, milliseconds).
	JoinTimeout time.Duration `json:"joinTimeout"`
	// Ignored lists the keys present in the file that nothing read, as full paths.
	Ignored []string `json:"ignored"`

	// origin maps a key's canonical path ("Recording.Clients[0].Slots") to where the value
	// came from: the key as spelled in the file, or an environment variable. Validate names
	// that; values set in code are named by the canonical path.
	origin map[string]string
	// baseDir is the absolute working directory that relative folders resolve against.
	baseDir string
}

// Certificate is the PKCS#12 file the recorder serves HTTPS with
// (Service.Kestrel.EndPoints.Https.Certificate).
type Certificate struct {
	Path     string `json:"path"` // absolute; "" when not given
	Password string `json:"-"`
	// AllowInvalid loads a certificate outside its validity period (the caller warns).
	AllowInvalid bool `json:"allowInvalid"`
}

// Credentials are a login for HTTP Basic authentication.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"-"`
}

// ServerLimits are Service.Kestrel.Limits, and Service.RateLimiting.
type ServerLimits struct {
	MaxConcurrentConnections int `json:"maxConcurrentConnections"` // 0 = no limit
	// MaxRequestBodySize may lower the cap of a JSON body (64 KiB), not
	// raise it: the API takes nothing larger. 0 = that cap.
	MaxRequestBodySize    int64 `json:"maxRequestBodySize"`
	MaxRequestHeaderCount int   `json:"maxRequestHeaderCount"` // 0 = no limit
	// RequestHeadersTimeout and KeepAliveTimeout are Kestrel's TimeSpans
	// ("00:00:10"): to read a request's headers, and an idle kept-alive
	// connection's life. Defaults 10 s and 2 min.
	RequestHeadersTimeout time.Duration `json:"requestHeadersTimeout"`
	KeepAliveTimeout      time.Duration `json:"keepAliveTimeout"`
	// RequestsPerSecondPerIP and BurstPerIP bound the requests of one
	// address (Service.RateLimiting; 429 beyond; defaults 20 and 100; 0 =
	// no limit). TrustedProxies are the addresses whose X-Forwarded-For
	// names the client (default loopback and private networks).
	RequestsPerSecondPerIP float64        `json:"requestsPerSecondPerIp"`
	BurstPerIP             int            `json:"burstPerIp"`
	TrustedProxies         []netip.Prefix `json:"trustedProxies"`
}

// RecorderClient is one portal allowed to record (Recording.Clients[]).
type RecorderClient struct {
	Username string `json:"username"` // Credentials.Username
	Password string `json:"-"`        // Credentials.Password
	// Host is the portal's origin, scheme://host[:port]: lower case, without a default port
	// or a trailing slash.
	Host         string `json:"host"`
	Slots        int    `json:"slots"`        // concurrent recordings; 1 when not given
	RecordingDir string `json:"recordingDir"` // absolute; the global RecordingDir when not given
	Ffmpeg       Ffmpeg `json:"ffmpeg"`
}

// Ffmpeg is a client's FfmpegConfig.
type Ffmpeg struct {
	StartDelay time.Duration `json:"startDelay"` // StartDelay, milliseconds
	// CommandOptions and CommandOutputOptions are split as a shell splits words (quotes and
	// backslashes, nothing expanded); an empty string gives nil.
	CommandOptions       []string `json:"commandOptions"`
	CommandOutputOptions []string `json:"commandOutputOptions"`
	// Compose (new key) mixes the room into one file; true when FfmpegConfig is present and
	// does not say otherwise, false when there is no FfmpegConfig.
	Compose bool `json:"compose"`
}

// Defaults for keys a recorder file leaves out.
const (
	defaultRecorderURL  = "https://*:8443"
	defaultMediaURL     = "ws://127.0.0.1:8011/ws"
	defaultRecordingDir = "records"
	defaultLogDir       = "logs"
	defaultJoinTimeout  = 30 * time.Second
)

// Canonical paths of the recorder keys that Validate may name.
const (
	keyURL          = "Service.Kestrel.EndPoints.Https.Url"
	keyCertPath     = "Service.Kestrel.EndPoints.Https.Certificate.Path"
	keyAdminUser    = "Service.Credentials.Username"
	keyAdminPass    = "Service.Credentials.Password"
	keyLimitsPrefix = "Service.Kestrel.Limits."
	keyLogDir       = "Logging.LogDir"
	keyRecordingDir = "Recording.RecordingDir"
	keyJoinTimeout  = "Recording.JoinTimeout"
	keyMediaURL     = "Media.Url"
	keyAuthSecret   = "Media.AuthSecret"
)

// clientKey is the canonical path of key in client i: "Recording.Clients[2].Slots".
func clientKey(i int, key string) string {
	return fmt.Sprintf("Recording.Clients[%d].%s", i, key)
}

// DefaultRecorder is what a file with no keys gives, before validation: it has neither a
// certificate nor an administrator, so it does not validate on its own. baseDir is the
// working directory relative folders resolve against.
func DefaultRecorder(baseDir string) *Recorder {
	base := absDir(baseDir)
	addr, tls, _ := parseListenURL(defaultRecorderURL)
	return &Recorder{
		URL:          defaultRecorderURL,
		ListenAddr:   addr,
		TLS:          tls,
		LogDir:       resolvePath(base, defaultLogDir),
		RecordingDir: resolvePath(base, defaultRecordingDir),
		MediaURL:     defaultMediaURL,
		JoinTimeout:  defaultJoinTimeout,
		Limits: ServerLimits{
			RequestHeadersTimeout: 10 * time.Second, KeepAliveTimeout: 2 * time.Minute,
			RequestsPerSecondPerIP: 100, BurstPerIP: 200, TrustedProxies: DefaultLimits().TrustedProxies,
		},
		Ignored: []string{},
		origin:  make(map[string]string),
		baseDir: base,
	}
}

// ParseRecorder reads a recorder config.json. source is recorded in Recorder.Source;
// configDir is the folder files named in it are relative to, baseDir the working directory
// folders are relative to (see Recorder). Errors are a *SyntaxError or a *KeyError.
func ParseRecorder(data []byte, source, configDir, baseDir string) (*Recorder, error) {
	root, err := parseDotNetJSON(data)
	if err != nil {
		return nil, err
	}
	r := DefaultRecorder(baseDir)
	if err := decodeRecorder(r, root, absDir(configDir)); err != nil {
		return nil, err
	}
	r.Source = source
	r.Ignored = root.unusedPaths()
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// LoadRecorder reads the file at path; files it names are relative to path's folder. Errors
// name the file and wrap the *SyntaxError, *KeyError or file system error.
func LoadRecorder(path, baseDir string) (*Recorder, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r, err := ParseRecorder(data, path, filepath.Dir(path), baseDir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// Client returns the client whose username is username (compared exactly), nil when none.
func (r *Recorder) Client(username string) *RecorderClient {
	for i := range r.Clients {
		if r.Clients[i].Username == username {
			return &r.Clients[i]
		}
	}
	return nil
}

// pathOf names the key at canonical path key as the operator wrote it (see origin).
func (r *Recorder) pathOf(key string) string {
	if p := r.origin[key]; p != "" {
		return p
	}
	return key
}

// note records that the key at canonical path key came from path; "" records nothing.
func (r *Recorder) note(key, path string) {
	if path == "" {
		return
	}
	if r.origin == nil {
		r.origin = make(map[string]string)
	}
	r.origin[key] = path
}

// absDir makes dir absolute against the process's working directory ("" is that directory).
func absDir(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil { // the working directory is gone: keep the path as given
		return filepath.Clean(dir)
	}
	return abs
}

// resolvePath makes p absolute against dir and cleans it; "" stays "".
func resolvePath(dir, p string) string {
	if p == "" {
		return ""
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return filepath.Clean(p)
}
