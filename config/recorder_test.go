package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The deployment's layout: the config mounted in config/, the working directory above it.
const (
	wsBase      = "/Websoft.Recording"
	wsConfigDir = "/Websoft.Recording/config"
)

func parseFixtureRecorder(t *testing.T) *Recorder {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "wt-docker-recorder-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRecorder(data, wsConfigDir+"/config.json", wsConfigDir, wsBase)
	if err != nil {
		t.Fatalf("ParseRecorder: %v", err)
	}
	return r
}

func TestRecorderFixture(t *testing.T) {
	r := parseFixtureRecorder(t)
	if r.Source != wsConfigDir+"/config.json" || r.URL != "https://*:8300" || r.ListenAddr != ":8300" || !r.TLS {
		t.Errorf("Source %q URL %q ListenAddr %q TLS %v", r.Source, r.URL, r.ListenAddr, r.TLS)
	}
	if want := (Certificate{Path: "/Websoft.Recording/certs/recorder.pfx", Password: "recpass", AllowInvalid: true}); r.Certificate != want {
		t.Errorf("Certificate %+v, want %+v", r.Certificate, want)
	}
	if want := (Credentials{Username: "admin", Password: "recsite"}); r.Admin != want {
		t.Errorf("Admin %+v", r.Admin)
	}
	if want := (ServerLimits{MaxConcurrentConnections: 10000, MaxRequestBodySize: 536870912, MaxRequestHeaderCount: 100,
		RequestHeadersTimeout: 10 * time.Second, KeepAliveTimeout: 2 * time.Minute, RequestsPerSecondPerIP: 100, BurstPerIP: 200,
		TrustedProxies: DefaultLimits().TrustedProxies}); !reflect.DeepEqual(r.Limits, want) {
		t.Errorf("Limits %+v, want %+v", r.Limits, want)
	}
	if r.LogDir != "/Websoft.Recording/logs" || r.Debug || r.RecordingDir != "/Websoft.Recording/records" {
		t.Errorf("LogDir %q Debug %v RecordingDir %q", r.LogDir, r.Debug, r.RecordingDir)
	}
	if r.MediaURL != "ws://127.0.0.1:8011/ws" || r.AuthSecret != "" || r.JoinTimeout != 30*time.Second {
		t.Errorf("MediaURL %q AuthSecret set %v JoinTimeout %v (the fixture has none of these keys)", r.MediaURL, r.AuthSecret != "", r.JoinTimeout)
	}
	want := []RecorderClient{{
		Username: "user1", Password: "user1", Host: "https://wt.local", Slots: 5,
		RecordingDir: "/Websoft.Recording/records",
		Ffmpeg:       Ffmpeg{StartDelay: 4 * time.Second, CommandOutputOptions: []string{"-pix_fmt", "yuv420p"}, Compose: true},
	}}
	if !reflect.DeepEqual(r.Clients, want) {
		t.Errorf("Clients\n got %+v\nwant %+v", r.Clients, want)
	}
	wantIgnored := []string{
		"Service.Kestrel.AllowSynchronousIO",
		"Service.Kestrel.Limits.MaxConcurrentUpgradedConnections",
		"Service.WebSocketOptions",
		"Service.FlushAsyncWait",
		"Service.WriteAsyncWait",
		"Service.WorkerThreads",
		"Service.Logging",
		"Recording.ReInitPulseAudioBeforeStartRecorder",
	}
	if !slices.Equal(r.Ignored, wantIgnored) {
		t.Errorf("Ignored\n got %q\nwant %q", r.Ignored, wantIgnored)
	}
	if c := r.Client("user1"); c == nil || c != &r.Clients[0] {
		t.Errorf("Client(user1) = %p, want %p", c, &r.Clients[0])
	}
	for _, name := range []string{"User1", "admin", ""} {
		if c := r.Client(name); c != nil {
			t.Errorf("Client(%q) = %+v, want nil", name, c)
		}
	}
}

func TestLoadRecorder(t *testing.T) {
	base := t.TempDir()
	path := filepath.Join("testdata", "wt-docker-recorder-config.json")
	r, err := LoadRecorder(path, base)
	if err != nil {
		t.Fatal(err)
	}
	testdata, _ := filepath.Abs("testdata")
	if want := filepath.Join(filepath.Dir(testdata), "certs", "recorder.pfx"); r.Certificate.Path != want {
		t.Errorf("Certificate.Path %q, want %q (relative to the config's folder)", r.Certificate.Path, want)
	}
	if r.RecordingDir != filepath.Join(base, "records") || r.LogDir != filepath.Join(base, "logs") {
		t.Errorf("RecordingDir %q LogDir %q, want them in %s", r.RecordingDir, r.LogDir, base)
	}
	if r.Source != path {
		t.Errorf("Source %q", r.Source)
	}

	if _, err := LoadRecorder(filepath.Join(base, "absent.json"), base); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent file: %v, want fs.ErrNotExist", err)
	}
	bad := filepath.Join(base, "config.json")
	if err := os.WriteFile(bad, []byte(strings.Replace(recorderBase, `"Slots": 2`, `"Slots": 0`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LoadRecorder(bad, base)
	var ke *KeyError
	if !errors.As(err, &ke) || err.Error() != bad+": Recording.Clients[0].Slots: 0 is below 1 (the number of concurrent recordings)" {
		t.Errorf("err = %v, want a *KeyError naming the file and the key", err)
	}
	if err := os.WriteFile(bad, []byte(`{"Service": }`), 0o600); err != nil {
		t.Fatal(err)
	}
	var se *SyntaxError
	if _, err := LoadRecorder(bad, base); !errors.As(err, &se) || !strings.HasPrefix(err.Error(), bad+": line 1:13: ") {
		t.Errorf("err = %v, want a *SyntaxError naming the file", err)
	}
}

func TestRecorderPathRule(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                 string
		configDir, baseDir   string
		cert, dir, log, cdir string // as written; "" leaves the key out
		wantCert, wantDir    string
		wantLog, wantCdir    string
	}{
		{"deployment", wsConfigDir, wsBase, "../certs/recorder.pfx", "records", "logs", "",
			"/Websoft.Recording/certs/recorder.pfx", "/Websoft.Recording/records", "/Websoft.Recording/logs", "/Websoft.Recording/records"},
		{"absolute paths stay", wsConfigDir, wsBase, "/Websoft.Recording/certs/recorder.pfx", "/data/rec", "/var/log/rec", "/data/client1",
			"/Websoft.Recording/certs/recorder.pfx", "/data/rec", "/var/log/rec", "/data/client1"},
		{"paths are cleaned", "/etc/rec/", "/srv//rec/", "./a/../b/c.pfx", "x/./y/", "/var//log/", "z/..//w",
			"/etc/rec/b/c.pfx", "/srv/rec/x/y", "/var/log", "/srv/rec/w"},
		{"defaults", wsConfigDir, wsBase, "c.pfx", "", "", "",
			"/Websoft.Recording/config/c.pfx", "/Websoft.Recording/records", "/Websoft.Recording/logs", "/Websoft.Recording/records"},
		{"relative folders against the process's directory", "conf", "work", "c.pfx", "r", "l", "cr",
			filepath.Join(cwd, "conf/c.pfx"), filepath.Join(cwd, "work/r"), filepath.Join(cwd, "work/l"), filepath.Join(cwd, "work/cr")},
		{"empty folders mean the working directory", "", "", "c.pfx", "r", "", "",
			filepath.Join(cwd, "c.pfx"), filepath.Join(cwd, "r"), filepath.Join(cwd, "logs"), filepath.Join(cwd, "r")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := recorderWith(tt.cert, tt.dir, tt.log, tt.cdir)
			r, err := ParseRecorder([]byte(doc), "paths.json", tt.configDir, tt.baseDir)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{r.Certificate.Path, r.RecordingDir, r.LogDir, r.Clients[0].RecordingDir}
			want := []string{tt.wantCert, tt.wantDir, tt.wantLog, tt.wantCdir}
			if !slices.Equal(got, want) {
				t.Errorf("cert, recordings, logs, client recordings\n got %q\nwant %q", got, want)
			}
		})
	}
}

// recorderWith is a minimal valid file with the given paths; "" leaves a key out.
func recorderWith(cert, dir, log, clientDir string) string {
	opt := func(key, value string) string {
		if value == "" {
			return ""
		}
		return `"` + key + `": ` + strconvQuote(value) + `,`
	}
	return `{
  "Logging": {` + opt("LogDir", log) + `},
  "Service": {
    "Kestrel": { "EndPoints": { "Https": { "Url": "https://127.0.0.1:8443", "Certificate": {` + opt("Path", cert) + `} } } },
    "Credentials": { "Username": "admin", "Password": "pw" },
  },
  "Recording": {` + opt("RecordingDir", dir) + `
    "Clients": [ { ` + opt("RecordingDir", clientDir) + ` "Credentials": { "Username": "u", "Password": "p" }, "Host": "https://portal.example" } ]
  }
}`
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// recorderBase is a valid file that uses every key we read.
const recorderBase = `{
  "Logging": { "LogDir": "logs", "DebugMode": true },
  "Service": {
    "Kestrel": {
      "EndPoints": {
        "Https": {
          "Url": "https://*:8300",
          "Certificate": { "Path": "recorder.pfx", "Password": "p", "AllowInvalid": false }
        }
      },
      "Limits": { "MaxConcurrentConnections": 100, "MaxRequestBodySize": "1048576", "MaxRequestHeaderCount": 50 }
    },
    "Credentials": { "Username": "admin", "Password": "adminpass" }
  },
  "Media": { "Url": "http://vclass-media:8011", "AuthSecret": "0123456789abcdef0123456789abcdef" },
  "Recording": {
    "RecordingDir": "records",
    "JoinTimeout": "45000",
    "Clients": [
      { "Credentials": { "Username": "user1", "Password": "pass1" }, "Host": "https://wt.local", "Slots": 2,
        "FfmpegConfig": { "StartDelay": 4000, "CommandOptions": "-loglevel warning", "CommandOutputOptions": "-pix_fmt yuv420p" } },
      { "Credentials": { "Username": "user2", "Password": "pass2" }, "Host": "HTTPS://Other.Example:443/", "RecordingDir": "/data/other",
        "FfmpegConfig": { "Compose": "false" } }
    ]
  }
}`

func TestRecorderBase(t *testing.T) {
	r, err := ParseRecorder([]byte(recorderBase), "base.json", "/cfg", "/work")
	if err != nil {
		t.Fatal(err)
	}
	if r.MediaURL != "ws://vclass-media:8011/ws" || r.AuthSecret != "0123456789abcdef0123456789abcdef" || r.JoinTimeout != 45*time.Second {
		t.Errorf("MediaURL %q AuthSecret %q JoinTimeout %v", r.MediaURL, r.AuthSecret, r.JoinTimeout)
	}
	if !r.Debug || r.Certificate.AllowInvalid || r.Limits.MaxRequestBodySize != 1<<20 {
		t.Errorf("Debug %v AllowInvalid %v Limits %+v", r.Debug, r.Certificate.AllowInvalid, r.Limits)
	}
	want := []RecorderClient{{
		Username: "user1", Password: "pass1", Host: "https://wt.local", Slots: 2, RecordingDir: "/work/records",
		Ffmpeg: Ffmpeg{StartDelay: 4 * time.Second, CommandOptions: []string{"-loglevel", "warning"},
			CommandOutputOptions: []string{"-pix_fmt", "yuv420p"}, Compose: true},
	}, {
		// Slots defaults to 1; Host is spelled as an Origin header spells it.
		Username: "user2", Password: "pass2", Host: "https://other.example", Slots: 1, RecordingDir: "/data/other",
		Ffmpeg: Ffmpeg{Compose: false},
	}}
	if !reflect.DeepEqual(r.Clients, want) {
		t.Errorf("Clients\n got %+v\nwant %+v", r.Clients, want)
	}
	if len(r.Ignored) != 0 {
		t.Errorf("Ignored %q", r.Ignored)
	}
}

func TestRecorderWithoutFfmpegConfig(t *testing.T) {
	doc := recorderWith("c.pfx", "", "", "")
	r, err := ParseRecorder([]byte(doc), "x.json", "/c", "/b")
	if err != nil {
		t.Fatal(err)
	}
	if f := r.Clients[0].Ffmpeg; !reflect.DeepEqual(f, Ffmpeg{}) {
		t.Errorf("Ffmpeg %+v, want the zero value (no FfmpegConfig: no composing)", f)
	}
}

func TestRecorderHTTPNeedsNoCertificate(t *testing.T) {
	doc := strings.Replace(recorderWith("", "", "", ""), "https://127.0.0.1:8443", "http://+:8300", 1)
	r, err := ParseRecorder([]byte(doc), "x.json", "/c", "/b")
	if err != nil {
		t.Fatal(err)
	}
	if r.TLS || r.ListenAddr != ":8300" || r.Certificate.Path != "" {
		t.Errorf("TLS %v ListenAddr %q Certificate %+v", r.TLS, r.ListenAddr, r.Certificate)
	}
}

// An Https endpoint is read whatever else EndPoints holds; an endpoint of another name is
// read when it is the only one.
func TestRecorderEndpointNames(t *testing.T) {
	const https = `"Https": { "Url": "https://127.0.0.1:8443", "Certificate": {"Path": "c.pfx"} }`
	tests := []struct {
		name, endpoints, listen string
		ignored                 []string
	}{
		{"https and another", `"Http": { "Url": "http://*:80" }, ` + https, "127.0.0.1:8443", []string{"Service.Kestrel.EndPoints.Http"}},
		{"only another", `"Plain": { "Url": "http://*:8300" }`, ":8300", []string{}},
		{"https in another case", `"HTTPS": { "Url": "http://[::1]:9" }`, "[::1]:9", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(recorderWith("", "", "", ""), `"Https": { "Url": "https://127.0.0.1:8443", "Certificate": {} }`, tt.endpoints, 1)
			r, err := ParseRecorder([]byte(doc), "x.json", "/c", "/b")
			if err != nil {
				t.Fatal(err)
			}
			if r.ListenAddr != tt.listen || !slices.Equal(r.Ignored, tt.ignored) {
				t.Errorf("ListenAddr %q Ignored %q, want %q %q", r.ListenAddr, r.Ignored, tt.listen, tt.ignored)
			}
		})
	}
}

func TestRecorderUnknownKeysAreIgnored(t *testing.T) {
	doc := strings.Replace(recorderBase, `"RecordingDir": "records",`, `"RecordingDirr": "typo", "RecordingDir": "records",`, 1)
	doc = strings.Replace(doc, `"Slots": 2,`, `"Slots": 2, "Slot": 9,`, 1)
	doc = strings.Replace(doc, `"Logging": {`, `"Extra": {"A": 1}, "Logging": {`, 1)
	r, err := ParseRecorder([]byte(doc), "x.json", "/c", "/b")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Extra", "Recording.RecordingDirr", "Recording.Clients[0].Slot"}
	if !slices.Equal(r.Ignored, want) {
		t.Errorf("Ignored %q, want %q", r.Ignored, want)
	}
}

func TestDefaultRecorder(t *testing.T) {
	r := DefaultRecorder(wsBase)
	want := &Recorder{
		URL: "https://*:8443", ListenAddr: ":8443", TLS: true,
		LogDir: "/Websoft.Recording/logs", RecordingDir: "/Websoft.Recording/records",
		MediaURL: "ws://127.0.0.1:8011/ws", JoinTimeout: 30 * time.Second, Ignored: []string{},
		Limits: ServerLimits{RequestHeadersTimeout: 10 * time.Second, KeepAliveTimeout: 2 * time.Minute,
			RequestsPerSecondPerIP: 100, BurstPerIP: 200, TrustedProxies: DefaultLimits().TrustedProxies},
		origin: map[string]string{}, baseDir: wsBase,
	}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("DefaultRecorder\n got %+v\nwant %+v", r, want)
	}
	// Without a certificate and an administrator it does not validate.
	if err := r.Validate(); err == nil || err.Error() != "Service.Kestrel.EndPoints.Https.Certificate.Path: is missing: an https Url (Service.Kestrel.EndPoints.Https.Url) needs a PKCS#12 certificate" {
		t.Errorf("Validate: %v", err)
	}
	r.Certificate.Path = "/c.pfx"
	r.Admin = Credentials{"admin", "pw"}
	if err := r.Validate(); err != nil {
		t.Errorf("Validate with a certificate and an administrator: %v", err)
	}
	// An empty file gives the defaults, and then fails for the same reason.
	if _, err := ParseRecorder([]byte("{}"), "empty.json", "/c", wsBase); err == nil || !strings.HasPrefix(err.Error(), keyCertPath+": is missing") {
		t.Errorf("empty file: %v", err)
	}
}

func TestRecorderSecretsAreNotPrinted(t *testing.T) {
	r, err := ParseRecorder([]byte(recorderBase), "base.json", "/cfg", "/work")
	if err != nil {
		t.Fatal(err)
	}
	r.Certificate.Password = "certificate-password"
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"adminpass", "pass1", "pass2", "certificate-password", r.AuthSecret} {
		if strings.Contains(string(out), secret) {
			t.Errorf("the JSON shows %q: %s", secret, out)
		}
	}
	if !strings.Contains(string(out), `"username":"user1"`) {
		t.Errorf("the JSON lacks the client's username: %s", out)
	}
}

func TestBrokenRecorder(t *testing.T) {
	const (
		https   = "Service.Kestrel.EndPoints.Https"
		url     = https + ".Url"
		client0 = "Recording.Clients[0]."
		client1 = "Recording.Clients[1]."
		admin   = "Service.Credentials."
	)
	tests := []struct {
		name     string
		old, new string // one replacement in recorderBase
		want     string // the whole message, or the path followed by ": " when it starts with "~"
	}{
		{"url not a url", `"https://*:8300"`, `"not a url"`, url + `: "not a url" is not a URL like https://*:8443`},
		{"url scheme", `"https://*:8300"`, `"ftp://*:21"`, url + `: "ftp://*:21" has the scheme "ftp"; expected https, or http behind a proxy`},
		{"url port out of range", `"https://*:8300"`, `"https://*:70000"`, url + `: "https://*:70000" has the port 70000, out of range 0-65535`},
		{"url port not a number", `"https://*:8300"`, `"https://*:https"`, url + `: "https://*:https" is not a URL like https://*:8443`},
		{"url with a path", `"https://*:8300"`, `"https://*:8300/rec"`, url + `: "https://*:8300/rec" has a path; only scheme://host:port is allowed`},
		{"url list", `"https://*:8300"`, `"https://*:8300;http://*:80"`, "~" + url},
		{"url of the wrong type", `"https://*:8300"`, `["https://*:8300"]`, url + ": is an array, expected a string"},
		{"url key spelled otherwise", `"Url": "https://*:8300"`, `"URL": "gopher://x"`, https + `.URL: "gopher://x" has the scheme "gopher"; expected https, or http behind a proxy`},
		{"tls without a certificate path", `"Path": "recorder.pfx", `, ``,
			https + ".Certificate.Path: is missing: an https Url (" + url + ") needs a PKCS#12 certificate"},
		{"tls without a certificate", `"Certificate": { "Path": "recorder.pfx", "Password": "p", "AllowInvalid": false }`, `"certificate": null`,
			https + ".certificate.Path: is missing: an https Url (" + url + ") needs a PKCS#12 certificate"},
		{"allow invalid not a bool", `"AllowInvalid": false`, `"AllowInvalid": "yes"`, https + `.Certificate.AllowInvalid: "yes" is not true or false`},
		{"several endpoints, none Https", `"Https": {`, `"Http": {}, "Other": {`,
			"Service.Kestrel.EndPoints: has the endpoints Http, Other but no Https; vclass-recorder listens on one: name it Https or keep one"},
		{"limit negative", `"MaxConcurrentConnections": 100`, `"MaxConcurrentConnections": -1`, "Service.Kestrel.Limits.MaxConcurrentConnections: -1 is negative (0 means no limit)"},
		{"limit not a number", `"MaxRequestHeaderCount": 50`, `"MaxRequestHeaderCount": "lots"`, `Service.Kestrel.Limits.MaxRequestHeaderCount: "lots" is not a whole number`},
		{"no admin", `"Credentials": { "Username": "admin", "Password": "adminpass" }`, `"Other": 1`,
			admin + "Username: is missing (the administrator sees every recording)"},
		{"admin without password", `"Password": "adminpass"`, `"Password": ""`, admin + "Password: is missing (the administrator sees every recording)"},
		{"admin credentials not an object", `"Credentials": { "Username": "admin", "Password": "adminpass" }`, `"Credentials": "admin:adminpass"`,
			`Service.Credentials: "admin:adminpass" is a string, expected an object`},
		{"admin username with a colon", `"Username": "admin"`, `"Username": "ad:min"`, admin + `Username: "ad:min" contains ':', which Basic authentication cannot carry`},
		{"debug not a bool", `"DebugMode": true`, `"DebugMode": 1`, "Logging.DebugMode: 1 is a number, expected true or false"},
		{"media url scheme", `"http://vclass-media:8011"`, `"udp://vclass-media:8011"`, `Media.Url: "udp://vclass-media:8011" has the scheme "udp"; expected ws, wss, http or https`},
		{"media url query", `"http://vclass-media:8011"`, `"ws://vclass-media:8011/ws?ticket=x"`, `Media.Url: "ws://vclass-media:8011/ws?ticket=x" has a query or a fragment`},
		{"auth secret short", `"0123456789abcdef0123456789abcdef"`, `"tooshort-secret"`, "Media.AuthSecret: is shorter than 32 characters (HS256 wants 256 bits)"},
		{"join timeout zero", `"JoinTimeout": "45000"`, `"JoinTimeout": 0`, "Recording.JoinTimeout: 0 is not a positive number of milliseconds"},
		{"join timeout not a number", `"JoinTimeout": "45000"`, `"JoinTimeout": "30s"`, `Recording.JoinTimeout: "30s" is not a whole number`},
		{"clients not an array", `"Clients": [`, `"Clients": {}, "Old": [`, "Recording.Clients: is an object, expected an array"},
		{"client not an object", `"Clients": [`, `"Clients": [ "user0", `, `Recording.Clients[0]: "user0" is a string, expected an object`},
		{"duplicate username", `"Username": "user2"`, `"Username": "user1"`, client1 + `Credentials.Username: "user1" is also the username of ` + client0 + "Credentials.Username"},
		{"username of the admin", `"Username": "user1"`, `"Username": "admin"`,
			client0 + `Credentials.Username: "admin" is the administrator's username (Service.Credentials.Username); give the client its own`},
		{"empty username", `"Username": "user2"`, `"Username": " "`, client1 + "Credentials.Username: is missing (each client needs its own login)"},
		{"empty password", `"Password": "pass2"`, `"Password": ""`, client1 + "Credentials.Password: is missing (each client needs its own login)"},
		{"no credentials", `{ "Credentials": { "Username": "user2", "Password": "pass2" },`, `{`,
			client1 + "Credentials.Username: is missing (each client needs its own login)"},
		{"credentials key spelled otherwise", `{ "Credentials": { "Username": "user2",`, `{ "credentials": { "userName": "",`,
			"Recording.Clients[1].credentials.userName: is missing (each client needs its own login)"},
		{"slots zero", `"Slots": 2`, `"Slots": 0`, client0 + "Slots: 0 is below 1 (the number of concurrent recordings)"},
		{"slots negative as a string", `"Slots": 2`, `"slots": "-3"`, "Recording.Clients[0].slots: -3 is below 1 (the number of concurrent recordings)"},
		{"slots not a number", `"Slots": 2`, `"Slots": "five"`, client0 + `Slots: "five" is not a whole number`},
		{"host with a path", `"https://wt.local"`, `"https://wt.local/portal"`, client0 + `Host: "https://wt.local/portal" has a path; only scheme://host:port is allowed`},
		{"host without a scheme", `"https://wt.local"`, `"wt.local"`, client0 + `Host: "wt.local" is not an origin like https://portal.example`},
		{"host with a query", `"https://wt.local"`, `"https://wt.local/?a=1"`, client0 + `Host: "https://wt.local/?a=1" has a query or a fragment; only scheme://host:port is allowed`},
		{"host scheme", `"https://wt.local"`, `"ws://wt.local"`, client0 + `Host: "ws://wt.local" has the scheme "ws"; expected http or https`},
		{"host missing", `"Host": "https://wt.local",`, ``, client0 + "Host: is missing: the portal's origin, like https://portal.example"},
		{"start delay negative", `"StartDelay": 4000`, `"StartDelay": "-1"`, client0 + "FfmpegConfig.StartDelay: -1 is negative"},
		{"start delay fractional", `"StartDelay": 4000`, `"StartDelay": 4000.5`, client0 + "FfmpegConfig.StartDelay: 4000.5 is not a whole number"},
		{"options unterminated", `"-loglevel warning"`, `"-vf 'scale=1280:-2"`, client0 + `FfmpegConfig.CommandOptions: "-vf 'scale=1280:-2" has an unterminated ' at byte 4`},
		{"options not a string", `"-loglevel warning"`, `["-loglevel", "warning"]`, client0 + "FfmpegConfig.CommandOptions: is an array, expected a string"},
		{"compose not a bool", `"Compose": "false"`, `"Compose": "no"`, client1 + `FfmpegConfig.Compose: "no" is not true or false`},
		{"duplicate key", `"Slots": 2`, `"Slots": 2, "SLOTS": 3`, "~" + client0 + "Slots"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(recorderBase, tt.old) {
				t.Fatalf("the base file lacks %q", tt.old)
			}
			doc := strings.Replace(recorderBase, tt.old, tt.new, 1)
			_, err := ParseRecorder([]byte(doc), "broken.json", "/cfg", "/work")
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("err = %v (%T), want a *KeyError", err, err)
			}
			if path, ok := strings.CutPrefix(tt.want, "~"); ok {
				if ke.Path != path {
					t.Errorf("path %q, want %q (%v)", ke.Path, path, err)
				}
				return
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestRecorderValidateNamesCanonicalKeys(t *testing.T) {
	// A Recorder built in code is named by the keys' canonical paths.
	hand := &Recorder{
		URL: "http://127.0.0.1:0", ListenAddr: "127.0.0.1:0",
		Admin: Credentials{"admin", "pw"}, LogDir: "/l", RecordingDir: "/r",
		MediaURL: "ws://127.0.0.1:8011/ws", JoinTimeout: time.Second,
		Clients: []RecorderClient{{Username: "u", Password: "p", Host: "https://p.example", Slots: 1, RecordingDir: "/r"}},
	}
	if err := hand.Validate(); err != nil {
		t.Fatalf("valid hand-built Recorder: %v", err)
	}
	for _, tt := range []struct {
		name   string
		change func(r *Recorder)
		want   string
	}{
		{"https without a certificate", func(r *Recorder) { r.URL, r.TLS = "https://127.0.0.1:0", true }, keyCertPath + ": is missing"},
		{"bad url", func(r *Recorder) { r.URL = "127.0.0.1:0" }, keyURL + `: "127.0.0.1:0" is not a URL`},
		{"relative folder", func(r *Recorder) { r.RecordingDir = "records" }, `Recording.RecordingDir: "records" is not an absolute path`},
		{"no log folder", func(r *Recorder) { r.LogDir = "" }, "Logging.LogDir: is missing"},
		{"media url not normalised", func(r *Recorder) { r.MediaURL = "http://127.0.0.1:8011" }, `Media.Url: "http://127.0.0.1:8011" is not a ws:// or wss:// URL (want "ws://127.0.0.1:8011/ws")`},
		{"no join timeout", func(r *Recorder) { r.JoinTimeout = 0 }, "Recording.JoinTimeout: 0 is not a positive"},
		{"slots", func(r *Recorder) { r.Clients[0].Slots = 0 }, "Recording.Clients[0].Slots: 0 is below 1"},
		{"host", func(r *Recorder) { r.Clients[0].Host = "p.example" }, `Recording.Clients[0].Host: "p.example" is not an origin`},
		{"client folder", func(r *Recorder) { r.Clients[0].RecordingDir = "" }, "Recording.Clients[0].RecordingDir: is missing"},
		{"start delay", func(r *Recorder) { r.Clients[0].Ffmpeg.StartDelay = -time.Second }, "Recording.Clients[0].FfmpegConfig.StartDelay: -1000 is negative"},
		{"body size", func(r *Recorder) { r.Limits.MaxRequestBodySize = -1 }, "Service.Kestrel.Limits.MaxRequestBodySize: -1 is negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := *hand
			c.Clients = slices.Clone(hand.Clients)
			tt.change(&c)
			if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %v, want %s...", err, tt.want)
			}
		})
	}
}

func FuzzParseRecorder(f *testing.F) {
	data, err := os.ReadFile(filepath.Join("testdata", "wt-docker-recorder-config.json"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(recorderBase))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseRecorder(data, "fuzz", "/c", "/b"); err != nil {
			checkErrorType(t, err)
		}
	})
}

func TestRecorderTimeoutsAndRateLimiting(t *testing.T) {
	doc := strings.Replace(readRecorderFixture(t), `"MaxRequestHeaderCount": 100`,
		`"MaxRequestHeaderCount": 100, "RequestHeadersTimeout": "00:00:05", "KeepAliveTimeout": "1.00:01:30.5"`, 1)
	doc = strings.Replace(doc, `"Kestrel": {`, `"RateLimiting": {"RequestsPerSecondPerIp": "2.5", "BurstPerIp": 4, "TrustedProxies": ["10.0.0.1"]}, "Kestrel": {`, 1)
	r, err := ParseRecorder([]byte(doc), "x.json", "/c", "/b")
	if err != nil {
		t.Fatal(err)
	}
	l := r.Limits
	if l.RequestHeadersTimeout != 5*time.Second || l.KeepAliveTimeout != 24*time.Hour+90500*time.Millisecond ||
		l.RequestsPerSecondPerIP != 2.5 || l.BurstPerIP != 4 || fmt.Sprint(l.TrustedProxies) != "[10.0.0.1/32]" {
		t.Errorf("limits %+v", l)
	}
	for _, bad := range []string{`"RequestHeadersTimeout": "30"`, `"RequestHeadersTimeout": "00:61:00"`, `"KeepAliveTimeout": "-00:00:01"`} {
		doc := strings.Replace(readRecorderFixture(t), `"MaxRequestHeaderCount": 100`, `"MaxRequestHeaderCount": 100, `+bad, 1)
		if _, err := ParseRecorder([]byte(doc), "x.json", "/c", "/b"); err == nil || !strings.Contains(err.Error(), "is not a TimeSpan") {
			t.Errorf("%s: error %v", bad, err)
		}
	}
}

func readRecorderFixture(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "wt-docker-recorder-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
