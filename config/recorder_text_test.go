package config

import (
	"slices"
	"testing"
)

func TestParseListenURL(t *testing.T) {
	tests := []struct {
		url, addr string
		tls       bool
		err       string
	}{
		{"https://*:8300", ":8300", true, ""},
		{"https://+:8300", ":8300", true, ""},
		{"https://0.0.0.0:8300", ":8300", true, ""},
		{"https://wt-recorder.local:8443", ":8443", true, ""}, // Kestrel binds names to all interfaces
		{"https://127.0.0.1:9000", "127.0.0.1:9000", true, ""},
		{"https://[::1]:9", "[::1]:9", true, ""},
		{"http://[::]:8300", "[::]:8300", false, ""},
		{"https://localhost:5001", "localhost:5001", true, ""},
		{"https://LOCALHOST:5001/", "LOCALHOST:5001", true, ""},
		{"HTTP://*:8300", ":8300", false, ""},
		{"https://*", ":443", true, ""},
		{"http://127.0.0.1", "127.0.0.1:80", false, ""},
		{"http://127.0.0.1:0", "127.0.0.1:0", false, ""},
		{"https://*:65536", "", false, "has the port 65536, out of range 0-65535"},
		{"ftp://*:21", "", false, `has the scheme "ftp"; expected https, or http behind a proxy`},
		{"*:8300", "", false, "is not a URL like https://*:8443"},
		{"https://:8300", "", false, "has no host (write * for all interfaces)"},
		{"https://u:p@*:8300", "", false, "has a user name; put credentials elsewhere"},
		{"https://*:8300/x", "", false, "has a path; only scheme://host:port is allowed"},
		{"https://*:8300#x", "", false, "has a query or a fragment; only scheme://host:port is allowed"},
		{"https://*:8300?", "", false, "has a query or a fragment; only scheme://host:port is allowed"},
		{"", "", false, "is not a URL like https://*:8443"},
	}
	for _, tt := range tests {
		addr, tls, err := parseListenURL(tt.url)
		var msg string
		if err != nil {
			msg = err.Error()
		}
		if addr != tt.addr || tls != tt.tls || msg != tt.err {
			t.Errorf("parseListenURL(%q) = %q, %v, %q; want %q, %v, %q", tt.url, addr, tls, msg, tt.addr, tt.tls, tt.err)
		}
	}
}

func TestNormalizeMediaURL(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"ws://127.0.0.1:8011/ws", "ws://127.0.0.1:8011/ws", ""},
		{"wss://wt-vclass.local/ws", "wss://wt-vclass.local/ws", ""},
		{"ws://vclass-media:8011", "ws://vclass-media:8011/ws", ""},
		{"ws://vclass-media:8011/", "ws://vclass-media:8011/ws", ""},
		{"http://vclass-media:8011", "ws://vclass-media:8011/ws", ""},
		{"https://wt-vclass.local", "wss://wt-vclass.local/ws", ""},
		{"HTTPS://wt-vclass.local/media/ws", "wss://wt-vclass.local/media/ws", ""},
		{"http://[::1]:8011", "ws://[::1]:8011/ws", ""},
		{"udp://h:1", "", `has the scheme "udp"; expected ws, wss, http or https`},
		{"vclass-media:8011", "", "is not a URL like ws://127.0.0.1:8011/ws"},
		{"127.0.0.1:8011", "", "is not a URL like ws://127.0.0.1:8011/ws"},
		{"ws://h:0/ws", "", "has the port 0, out of range 1-65535"},
		{"ws://u@h/ws", "", "has a user name; the recorder authenticates with a ticket"},
		{"ws://h/ws#x", "", "has a query or a fragment"},
		{"ws:///ws", "", "is not a URL like ws://127.0.0.1:8011/ws"},
		{"http://media-1:8011, ws://media-2:8011/ws", "ws://media-1:8011/ws,ws://media-2:8011/ws", ""},
		{"ws://media-1:8011/ws,", "", "is not a URL like ws://127.0.0.1:8011/ws"},
	}
	for _, tt := range tests {
		got, err := normalizeMediaURL(tt.in)
		var msg string
		if err != nil {
			msg = err.Error()
		}
		if got != tt.want || msg != tt.err {
			t.Errorf("normalizeMediaURL(%q) = %q, %q; want %q, %q", tt.in, got, msg, tt.want, tt.err)
		}
	}
}

func TestNormalizeOrigin(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"https://wt.local", "https://wt.local", ""},
		{"https://wt.local/", "https://wt.local", ""},
		{"HTTPS://WT.Local:443", "https://wt.local", ""},
		{"http://wt.local:80", "http://wt.local", ""},
		{"http://wt.local:443", "http://wt.local:443", ""},
		{"https://10.0.0.5:8443", "https://10.0.0.5:8443", ""},
		{"https://[2001:DB8::1]:8443", "https://[2001:db8::1]:8443", ""},
		{"https://wt.local/x", "", "has a path; only scheme://host:port is allowed"},
		{"https://wt.local?x", "", "has a query or a fragment; only scheme://host:port is allowed"},
		{"wt.local", "", "is not an origin like https://portal.example"},
		{"ws://wt.local", "", `has the scheme "ws"; expected http or https`},
		{"https://wt.local:0", "", "has the port 0, out of range 1-65535"},
		{"https://:443", "", "has no host"},
	}
	for _, tt := range tests {
		got, err := normalizeOrigin(tt.in)
		var msg string
		if err != nil {
			msg = err.Error()
		}
		if got != tt.want || msg != tt.err {
			t.Errorf("normalizeOrigin(%q) = %q, %q; want %q, %q", tt.in, got, msg, tt.want, tt.err)
		}
	}
}

func TestSplitCommandLine(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  \t\n", nil},
		{"-pix_fmt yuv420p", []string{"-pix_fmt", "yuv420p"}},
		{"  -c:v  libx264\t-preset veryfast ", []string{"-c:v", "libx264", "-preset", "veryfast"}},
		{`-vf 'scale=1280:-2, fps=25'`, []string{"-vf", "scale=1280:-2, fps=25"}},
		{`-metadata "title=Class \"A\" \\ 1"`, []string{"-metadata", `title=Class "A" \ 1`}},
		{`"a\b" "\$HOME" '$HOME' $HOME`, []string{`a\b`, "$HOME", "$HOME", "$HOME"}},
		{`a\ b c\'d \"e\"`, []string{"a b", "c'd", `"e"`}},
		{`x''y "" ''`, []string{"xy", "", ""}},
		{`'it'\''s'`, []string{"it's"}},
		{"a\\\nb \"c\\\nd\"", []string{"ab", "cd"}},
		{`-f "mp4" -movflags +faststart`, []string{"-f", "mp4", "-movflags", "+faststart"}},
		{"ünï 'cödé'", []string{"ünï", "cödé"}},
	}
	for _, tt := range tests {
		got, err := splitCommandLine(tt.in)
		if err != nil || !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("splitCommandLine(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for in, want := range map[string]string{
		`-vf 'scale`:   "has an unterminated ' at byte 4",
		`-metadata "t`: `has an unterminated " at byte 10`,
		`a "b\"`:       `has an unterminated " at byte 2`,
		`trailing \`:   "ends with a lone backslash",
	} {
		if got, err := splitCommandLine(in); err == nil || err.Error() != want {
			t.Errorf("splitCommandLine(%q) = %q, %v; want the error %q", in, got, err, want)
		}
	}
}
