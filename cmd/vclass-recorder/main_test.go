package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// A goroutine still running after the last test is a leak: fail the package.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const fixture = "../../config/testdata/wt-docker-recorder-config.json"

func noEnv(string) string { return "" }

func runArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, noEnv, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// The deployment's file loads unchanged; the settings print as JSON
// without its passwords.
func TestCheckConfigFixture(t *testing.T) {
	code, out, errOut := runArgs(t, "-check-config", fixture)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var eff struct {
		ListenAddr string `json:"listenAddr"`
		TLS        bool   `json:"tls"`
		Clients    []struct {
			Username string `json:"username"`
			Slots    int    `json:"slots"`
		} `json:"clients"`
	}
	if err := json.Unmarshal([]byte(out), &eff); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if eff.ListenAddr != ":8300" || !eff.TLS || len(eff.Clients) != 1 || eff.Clients[0].Slots != 5 {
		t.Errorf("effective settings %+v", eff)
	}
	for _, secret := range []string{"recpass", "recsite"} {
		if strings.Contains(out, secret) {
			t.Errorf("the settings show the password %q", secret)
		}
	}
}

// A certificate that cannot be used stops the start with exit code 2 and
// says why.
func TestCertificateErrors(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is not installed")
		}
		t.Skip("openssl is not installed")
	}
	dir := t.TempDir()
	key, crt, pfx := filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem"), filepath.Join(dir, "recorder.pfx")
	for _, args := range [][]string{
		{"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=wt-recorder.local"},
		{"pkcs12", "-export", "-in", crt, "-inkey", key, "-out", pfx, "-passout", "pass:right"},
	} {
		if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl: %v\n%s", err, out)
		}
	}
	config := func(path, password string) string {
		p := filepath.Join(dir, strings.TrimSuffix(path, filepath.Ext(path))+"-"+password+".json")
		text := `{"Service": {"Kestrel": {"EndPoints": {"Https": {"Url": "https://127.0.0.1:0",
		  "Certificate": {"Path": "` + path + `", "Password": "` + password + `"}}}},
		  "Credentials": {"Username": "admin", "Password": "pw"}},
		  "Recording": {"RecordingDir": "` + filepath.Join(dir, "rec") + `", "Clients": []}}`
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		config, want string
	}{
		{config("recorder.pfx", "wrong"), "wrong password"},
		{config("missing.pfx", "right"), "no such file"},
		{config("c.pem", "right"), "PKCS#12"},
	} {
		code, _, errOut := runArgs(t, "-config", tt.config, "-log-dir", "")
		if code != exitConfig || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "Certificate") {
			t.Errorf("%s: exit %d, %q; want exit 2 saying %q about the Certificate key", tt.config, code, errOut, tt.want)
		}
	}
}
