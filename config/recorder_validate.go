package config

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Validate checks r and returns the first problem as a *KeyError naming the file key (as
// spelled in the file), the environment variable, or, for a value set in code, the key's
// canonical path the bad value came from.
func (r *Recorder) Validate() error {
	for _, check := range []func() error{r.validateService, r.validateFolders, r.validateMedia, r.validateClients} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

func (r *Recorder) bad(key, value, reason string) *KeyError {
	return &KeyError{Path: r.pathOf(key), Value: value, Reason: reason}
}

func (r *Recorder) validateService() error {
	if _, _, err := parseListenURL(r.URL); err != nil {
		return r.bad(keyURL, strconv.Quote(r.URL), err.Error())
	}
	if r.ListenAddr == "" {
		return r.bad(keyURL, strconv.Quote(r.URL), "gives no listen address")
	}
	if r.TLS && r.Certificate.Path == "" {
		return r.bad(keyCertPath, "", "is missing: an https Url ("+r.pathOf(keyURL)+") needs a PKCS#12 certificate")
	}
	if err := r.checkCredentials(keyAdminUser, keyAdminPass, r.Admin.Username, r.Admin.Password,
		"the administrator sees every recording"); err != nil {
		return err
	}
	for _, l := range []struct {
		key   string
		value int64
	}{
		{"MaxConcurrentConnections", int64(r.Limits.MaxConcurrentConnections)},
		{"MaxRequestBodySize", r.Limits.MaxRequestBodySize},
		{"MaxRequestHeaderCount", int64(r.Limits.MaxRequestHeaderCount)},
	} {
		if l.value < 0 {
			return r.bad(keyLimitsPrefix+l.key, strconv.FormatInt(l.value, 10), "is negative (0 means no limit)")
		}
	}
	return nil
}

// checkCredentials requires a username and a password; why says what the login is for.
func (r *Recorder) checkCredentials(userKey, passKey, user, pass, why string) error {
	switch {
	case strings.TrimSpace(user) == "":
		return r.bad(userKey, "", "is missing ("+why+")")
	case strings.Contains(user, ":"):
		// Basic authentication splits "user:password" at the first colon.
		return r.bad(userKey, strconv.Quote(user), "contains ':', which Basic authentication cannot carry")
	case pass == "":
		return r.bad(passKey, "", "is missing ("+why+")")
	}
	return nil
}

func (r *Recorder) validateFolders() error {
	if err := r.checkFolder(keyLogDir, r.LogDir); err != nil {
		return err
	}
	return r.checkFolder(keyRecordingDir, r.RecordingDir)
}

func (r *Recorder) checkFolder(key, dir string) error {
	switch {
	case dir == "":
		return r.bad(key, "", "is missing")
	case !filepath.IsAbs(dir):
		return r.bad(key, strconv.Quote(dir), "is not an absolute path")
	}
	return nil
}

func (r *Recorder) validateMedia() error {
	if norm, err := normalizeMediaURL(r.MediaURL); err != nil {
		return r.bad(keyMediaURL, strconv.Quote(r.MediaURL), err.Error())
	} else if norm != r.MediaURL {
		return r.bad(keyMediaURL, strconv.Quote(r.MediaURL), "is not a ws:// or wss:// URL (want "+strconv.Quote(norm)+")")
	}
	if r.AuthSecret != "" && len(r.AuthSecret) < minSecretLength {
		// The value stays out of the message: it is a secret.
		return r.bad(keyAuthSecret, "", fmt.Sprintf("is shorter than %d characters (HS256 wants 256 bits)", minSecretLength))
	}
	if r.JoinTimeout <= 0 {
		return r.bad(keyJoinTimeout, millis(r.JoinTimeout), "is not a positive number of milliseconds")
	}
	return nil
}

func millis(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

func (r *Recorder) validateClients() error {
	byUsername := make(map[string]int, len(r.Clients))
	for i, c := range r.Clients {
		userKey := clientKey(i, "Credentials.Username")
		if err := r.checkCredentials(userKey, clientKey(i, "Credentials.Password"), c.Username, c.Password,
			"each client needs its own login"); err != nil {
			return err
		}
		if c.Username == r.Admin.Username {
			return r.bad(userKey, strconv.Quote(c.Username), "is the administrator's username ("+r.pathOf(keyAdminUser)+"); give the client its own")
		}
		if j, dup := byUsername[c.Username]; dup {
			return r.bad(userKey, strconv.Quote(c.Username), "is also the username of "+r.pathOf(clientKey(j, "Credentials.Username")))
		}
		byUsername[c.Username] = i
		if err := r.validateClient(i, c); err != nil {
			return err
		}
	}
	return nil
}

func (r *Recorder) validateClient(i int, c RecorderClient) error {
	if c.Host == "" {
		return r.bad(clientKey(i, "Host"), "", "is missing: the portal's origin, like https://portal.example")
	}
	if _, err := normalizeOrigin(c.Host); err != nil {
		return r.bad(clientKey(i, "Host"), strconv.Quote(c.Host), err.Error())
	}
	if c.Slots < 1 {
		return r.bad(clientKey(i, "Slots"), strconv.Itoa(c.Slots), "is below 1 (the number of concurrent recordings)")
	}
	if err := r.checkFolder(clientKey(i, "RecordingDir"), c.RecordingDir); err != nil {
		return err
	}
	if c.Ffmpeg.StartDelay < 0 {
		return r.bad(clientKey(i, "FfmpegConfig.StartDelay"), millis(c.Ffmpeg.StartDelay), "is negative")
	}
	return nil
}
