package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// The text formats of recorder values: Kestrel endpoint URLs, vclass-media's WebSocket URL,
// portal origins and ffmpeg option strings. Errors are reasons, worded to follow the value
// in a KeyError.

// parseListenURL derives the listen address from a Kestrel endpoint URL, binding as Kestrel
// does: a host that is not an IP address or localhost (*, +, a name) means all interfaces,
// and so does 0.0.0.0.
func parseListenURL(raw string) (addr string, tls bool, err error) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return "", false, errors.New("is not a URL like https://*:8443")
	}
	port := "80"
	switch strings.ToLower(u.Scheme) {
	case "https":
		tls, port = true, "443"
	case "http":
	default:
		return "", false, fmt.Errorf("has the scheme %q; expected https, or http behind a proxy", u.Scheme)
	}
	if err := onlyHost(u); err != nil {
		return "", false, err
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n > 65535 {
			return "", false, fmt.Errorf("has the port %s, out of range 0-65535", p)
		}
		port = p
	}
	host := u.Hostname()
	if host == "" {
		return "", false, errors.New("has no host (write * for all interfaces)")
	}
	ip, ipErr := netip.ParseAddr(host)
	if (ipErr != nil && !strings.EqualFold(host, "localhost")) || (ip.Is4() && ip.IsUnspecified()) {
		host = ""
	}
	return net.JoinHostPort(host, port), tls, nil
}

// onlyHost rejects the parts of a URL after its host and port; a lone "/" path is allowed.
func onlyHost(u *url.URL) error {
	switch {
	case u.User != nil:
		return errors.New("has a user name; put credentials elsewhere")
	case u.Path != "" && u.Path != "/":
		return errors.New("has a path; only scheme://host:port is allowed")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return errors.New("has a query or a fragment; only scheme://host:port is allowed")
	}
	return nil
}

// normalizeMediaURL normalizes a comma-separated list of vclass-media
// addresses (several nodes of a cluster: the recorder tries them in turn),
// each as normalizeOneMediaURL does.
func normalizeMediaURL(raw string) (string, error) {
	var out []string
	for _, part := range strings.Split(raw, ",") {
		u, err := normalizeOneMediaURL(strings.TrimSpace(part))
		if err != nil {
			return "", err
		}
		out = append(out, u)
	}
	return strings.Join(out, ","), nil
}

// normalizeOneMediaURL turns an address of vclass-media into the URL of its WebSocket: http
// becomes ws and https wss, and a URL with no path gets /ws.
func normalizeOneMediaURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return "", errors.New("is not a URL like ws://127.0.0.1:8011/ws")
	}
	switch strings.ToLower(u.Scheme) {
	case "ws", "http":
		u.Scheme = "ws"
	case "wss", "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("has the scheme %q; expected ws, wss, http or https", u.Scheme)
	}
	switch {
	case u.User != nil:
		return "", errors.New("has a user name; the recorder authenticates with a ticket")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", errors.New("has a query or a fragment")
	case u.Hostname() == "":
		return "", errors.New("has no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return "", fmt.Errorf("has the port %s, out of range 1-65535", p)
		}
	}
	if u.Path == "" || u.Path == "/" {
		u.Path, u.RawPath = "/ws", ""
	}
	return u.String(), nil
}

// normalizeOrigin checks that raw is a web origin, scheme://host[:port] with an http or
// https scheme, and spells it as browsers send it in an Origin header: lower case, with no
// default port and no trailing slash.
func normalizeOrigin(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Host == "" {
		return "", errors.New("is not an origin like https://portal.example")
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("has the scheme %q; expected http or https", u.Scheme)
	}
	if err := onlyHost(u); err != nil {
		return "", err
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", errors.New("has no host")
	}
	if strings.Contains(host, ":") { // IPv6
		host = "[" + host + "]"
	}
	port := u.Port()
	if port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", fmt.Errorf("has the port %s, out of range 1-65535", port)
		}
	}
	if port == "" || (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		return scheme + "://" + host, nil
	}
	return scheme + "://" + host + ":" + port, nil
}

// splitCommandLine splits s into words as a POSIX shell does, without expanding anything:
// words are separated by blanks; '...' keeps everything literally; "..." keeps everything
// but \" \\ \$ \` (unescaped) and backslash-newline (removed); outside quotes a backslash
// keeps the next character literally. An empty s gives nil.
func splitCommandLine(s string) ([]string, error) {
	var (
		words  []string
		word   strings.Builder
		inWord bool
	)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case ' ', '\t', '\n', '\r':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("has an unterminated ' at byte %d", i)
			}
			word.WriteString(s[i+1 : i+1+end])
			i += end + 1
			inWord = true
		case '"':
			end, err := doubleQuoted(s, i, &word)
			if err != nil {
				return nil, err
			}
			i = end
			inWord = true
		case '\\':
			if i+1 == len(s) {
				return nil, errors.New("ends with a lone backslash")
			}
			i++
			if s[i] != '\n' { // backslash-newline joins lines
				word.WriteByte(s[i])
				inWord = true
			}
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// doubleQuoted appends the "..." starting at s[start] to word and returns the index of the
// closing quote.
func doubleQuoted(s string, start int, word *strings.Builder) (int, error) {
	for i := start + 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i, nil
		case c == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0:
			i++
			if s[i] != '\n' {
				word.WriteByte(s[i])
			}
		default:
			word.WriteByte(c)
		}
	}
	return 0, fmt.Errorf(`has an unterminated " at byte %d`, start)
}
