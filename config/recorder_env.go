package config

import (
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Environment variables that override the recorder's file. VCLASS_AUTH_SECRET (EnvAuthSecret)
// is shared with vclass-media: the recorder signs its tickets with the secret media verifies.
const (
	EnvRecorderURL  = "VCLASS_RECORDER_URL"  // URL (and so ListenAddr and TLS), e.g. "http://127.0.0.1:8300"
	EnvMediaURL     = "VCLASS_MEDIA_URL"     // MediaURL, normalised as Media.Url is
	EnvRecordingDir = "VCLASS_RECORDING_DIR" // RecordingDir: absolute, or relative to the working directory
)

// ApplyEnv overrides r from the environment (getenv is os.Getenv outside tests); unset or
// empty variables change nothing. Clients whose RecordingDir is the global one follow a new
// VCLASS_RECORDING_DIR. A bad value is a *KeyError whose Path is the variable; r is then
// validated again.
func (r *Recorder) ApplyEnv(getenv func(string) string) error {
	// A copy of r shares these; write to our own.
	r.origin = maps.Clone(r.origin)
	r.Clients = slices.Clone(r.Clients)
	if r.origin == nil {
		r.origin = make(map[string]string)
	}
	if v := strings.TrimSpace(getenv(EnvRecorderURL)); v != "" {
		addr, tls, err := parseListenURL(v)
		if err != nil {
			return &KeyError{Path: EnvRecorderURL, Value: strconv.Quote(v), Reason: err.Error()}
		}
		r.URL, r.ListenAddr, r.TLS = v, addr, tls
		r.note(keyURL, EnvRecorderURL)
	}
	if v := strings.TrimSpace(getenv(EnvMediaURL)); v != "" {
		u, err := normalizeMediaURL(v)
		if err != nil {
			return &KeyError{Path: EnvMediaURL, Value: strconv.Quote(v), Reason: err.Error()}
		}
		r.MediaURL = u
		r.note(keyMediaURL, EnvMediaURL)
	}
	if v := strings.TrimSpace(getenv(EnvAuthSecret)); v != "" {
		r.AuthSecret = v
		r.note(keyAuthSecret, EnvAuthSecret)
	}
	if v := strings.TrimSpace(getenv(EnvRecordingDir)); v != "" {
		r.applyRecordingDir(v)
	}
	if v := strings.TrimSpace(getenv(EnvRedisURL)); v != "" {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			return &KeyError{Path: EnvRedisURL, Value: strconv.Quote(v), Reason: "is not a redis://host:port/db URL"}
		}
		r.RedisURL = v
	}
	return r.Validate()
}

func (r *Recorder) applyRecordingDir(v string) {
	base := r.baseDir
	if base == "" { // a Recorder built in code: the process's working directory
		base = absDir("")
	}
	dir := resolvePath(base, v)
	for i := range r.Clients {
		if r.Clients[i].RecordingDir == r.RecordingDir {
			r.Clients[i].RecordingDir = dir
			r.note(clientKey(i, "RecordingDir"), EnvRecordingDir)
		}
	}
	r.RecordingDir = dir
	r.note(keyRecordingDir, EnvRecordingDir)
}
