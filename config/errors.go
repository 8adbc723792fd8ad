// Package config loads the configuration files a vclass deployment ships: the media server's
// mediasoup_config.json (as written for the mediasoup-based server it replaces) and the
// recorder's config.json, with the PKCS#12 certificate it names. Both files are .NET
// configuration JSON, read by a tolerant parser of our own.
package config

import "fmt"

// KeyError reports a bad value at a key path: a path in the file ("MediasoupSettings.
// WorkerSettings.RtcMinPort", "…RtpCodecCapabilities[2].MimeType"), the environment variable
// that set it, or the JSON field path of a value set in code ("rtc.minPort").
type KeyError struct {
	Path string
	// Value is the offending value as written: numbers bare, strings quoted; "" when the
	// problem is the key itself (missing, duplicated, of the wrong type).
	Value  string
	Reason string
}

// Error reads "Path: Value Reason", e.g.
// "MediasoupSettings.WorkerSettings.RtcMinPort: 70000 is not a port".
func (e *KeyError) Error() string {
	if e.Value == "" {
		return e.Path + ": " + e.Reason
	}
	return e.Path + ": " + e.Value + " " + e.Reason
}

// SyntaxError reports a file that is not .NET configuration JSON. Line and Col are 1-based;
// Col counts characters (not bytes) from the start of the line.
type SyntaxError struct {
	Line, Col int
	Msg       string
}

// Error reads "line 3:14: Msg".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d:%d: %s", e.Line, e.Col, e.Msg)
}
