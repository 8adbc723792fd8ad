package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestRecorderApplyEnv(t *testing.T) {
	secret := strings.Repeat("s", 32)
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, r *Recorder)
	}{
		{"nothing set", map[string]string{EnvRecorderURL: " ", EnvMediaURL: ""}, func(t *testing.T, r *Recorder) {
			if want := parseFixtureRecorder(t); !reflect.DeepEqual(r, want) {
				t.Errorf("changed:\n got %+v\nwant %+v", r, want)
			}
		}},
		{"recorder URL", map[string]string{EnvRecorderURL: "http://127.0.0.1:0"}, func(t *testing.T, r *Recorder) {
			if r.URL != "http://127.0.0.1:0" || r.ListenAddr != "127.0.0.1:0" || r.TLS {
				t.Errorf("URL %q ListenAddr %q TLS %v", r.URL, r.ListenAddr, r.TLS)
			}
		}},
		{"media URL", map[string]string{EnvMediaURL: "http://vclass-media:8011"}, func(t *testing.T, r *Recorder) {
			if r.MediaURL != "ws://vclass-media:8011/ws" {
				t.Errorf("MediaURL %q", r.MediaURL)
			}
		}},
		{"auth secret", map[string]string{EnvAuthSecret: " " + secret + " "}, func(t *testing.T, r *Recorder) {
			if r.AuthSecret != secret {
				t.Errorf("AuthSecret %q", r.AuthSecret)
			}
		}},
		{"absolute recording dir", map[string]string{EnvRecordingDir: "/data//records/"}, func(t *testing.T, r *Recorder) {
			if r.RecordingDir != "/data/records" || r.Clients[0].RecordingDir != "/data/records" {
				t.Errorf("RecordingDir %q, client's %q (it inherited the global one)", r.RecordingDir, r.Clients[0].RecordingDir)
			}
		}},
		{"relative recording dir", map[string]string{EnvRecordingDir: "rec2"}, func(t *testing.T, r *Recorder) {
			if r.RecordingDir != "/Websoft.Recording/rec2" {
				t.Errorf("RecordingDir %q, want it in the working directory", r.RecordingDir)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := parseFixtureRecorder(t)
			if err := r.ApplyEnv(envOf(tt.env)); err != nil {
				t.Fatalf("ApplyEnv: %v", err)
			}
			tt.check(t, r)
		})
	}
}

func TestRecorderApplyEnvKeepsClientFolders(t *testing.T) {
	r, err := ParseRecorder([]byte(recorderBase), "base.json", "/cfg", "/work")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ApplyEnv(envOf(map[string]string{EnvRecordingDir: "/elsewhere"})); err != nil {
		t.Fatal(err)
	}
	if got := []string{r.RecordingDir, r.Clients[0].RecordingDir, r.Clients[1].RecordingDir}; !reflect.DeepEqual(got, []string{"/elsewhere", "/elsewhere", "/data/other"}) {
		t.Errorf("folders %q: the client with its own folder keeps it", got)
	}
}

func TestRecorderApplyEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"recorder URL scheme", map[string]string{EnvRecorderURL: "tcp://*:8300"},
			`VCLASS_RECORDER_URL: "tcp://*:8300" has the scheme "tcp"; expected https, or http behind a proxy`},
		{"recorder URL port", map[string]string{EnvRecorderURL: "http://*:99999"}, `VCLASS_RECORDER_URL: "http://*:99999" has the port 99999, out of range 0-65535`},
		{"media URL", map[string]string{EnvMediaURL: "vclass-media"}, `VCLASS_MEDIA_URL: "vclass-media" is not a URL like ws://127.0.0.1:8011/ws`},
		{"short secret", map[string]string{EnvAuthSecret: "short"}, "VCLASS_AUTH_SECRET: is shorter than 32 characters (HS256 wants 256 bits)"},
		{"https without a certificate", map[string]string{EnvRecorderURL: "https://*:8443"},
			keyCertPath + ": is missing: an https Url (VCLASS_RECORDER_URL) needs a PKCS#12 certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// An http file, so that an https variable has no certificate to use.
			doc := strings.Replace(recorderWith("", "", "", ""), "https://127.0.0.1:8443", "http://127.0.0.1:8300", 1)
			r, err := ParseRecorder([]byte(doc), "x.json", "/c", "/b")
			if err != nil {
				t.Fatal(err)
			}
			err = r.ApplyEnv(envOf(tt.env))
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("err = %v (%T), want a *KeyError", err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestRecorderApplyEnvLeavesCopiesAlone(t *testing.T) {
	orig := parseFixtureRecorder(t)
	cp := *orig
	if err := cp.ApplyEnv(envOf(map[string]string{EnvRecordingDir: "/other", EnvAuthSecret: strings.Repeat("x", 40)})); err != nil {
		t.Fatal(err)
	}
	if orig.Clients[0].RecordingDir != "/Websoft.Recording/records" {
		t.Errorf("the original's client changed: %q", orig.Clients[0].RecordingDir)
	}
	// The original still names its own keys.
	orig.AuthSecret = "short"
	if err, want := orig.Validate(), "Media.AuthSecret: is shorter than 32 characters (HS256 wants 256 bits)"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}
