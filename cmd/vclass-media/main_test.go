package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// A goroutine still running after the last test is a leak: fail the package.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const fixture = "../../config/testdata/wt-docker-mediasoup_config.json"

func noEnv(string) string { return "" }

func runCheck(t *testing.T, path string, getenv func(string) string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-check-config", path}, getenv, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// The deployment's file loads unchanged; the effective settings are JSON
// and name the keys we ignore.
func TestCheckConfigFixture(t *testing.T) {
	code, out, errOut := runCheck(t, fixture, noEnv)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var eff struct {
		ServeMode         string   `json:"serveMode"`
		AllowEmptyTickets bool     `json:"allowEmptyTickets"`
		Ignored           []string `json:"ignoredKeys"`
		RTC               struct {
			MinPort, MaxPort int
		} `json:"rtc"`
	}
	if err := json.Unmarshal([]byte(out), &eff); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if eff.ServeMode != "Open" || eff.AllowEmptyTickets || eff.RTC.MinPort != 20000 || eff.RTC.MaxPort != 20009 {
		t.Errorf("effective settings wrong: %+v", eff)
	}
	if !strings.Contains(strings.Join(eff.Ignored, " "), "MediasoupStartupSettings.MediasoupVersion") {
		t.Errorf("ignored keys do not list MediasoupVersion: %v", eff.Ignored)
	}
}

// Ten ways to break the deployment's file: each exits 2 and names the key.
func TestCheckConfigBrokenFiles(t *testing.T) {
	good, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, old, new, want string
	}{
		{"port out of range", `"RtcMinPort": 20000`, `"RtcMinPort": 70000`, "MediasoupSettings.WorkerSettings.RtcMinPort: 70000 is not a port"},
		{"range reversed", `"RtcMaxPort": 20009`, `"RtcMaxPort": 19000`, "MediasoupSettings.WorkerSettings.RtcMinPort"},
		{"bad log level", `"LogLevel": "error"`, `"LogLevel": "loud"`, "MediasoupSettings.WorkerSettings.LogLevel"},
		{"bad serve mode", `"ServeMode": "Open"`, `"ServeMode": "Everyone"`, "MediasoupSettings.MeetingServerSettings.ServeMode"},
		{"bad bool", `"AllowEmptyTickets": "false"`, `"AllowEmptyTickets": "nah"`, "MediasoupSettings.AuthSettings.AllowEmptyTickets"},
		{"bad listen ip", `"Ip": "0.0.0.0",`, `"Ip": "1.2.3",`, "ListenIps[0].Ip"},
		{"bad announced ip", `"AnnouncedIp": "0.0.0.0"
`, `"AnnouncedIp": "not-an-ip"
`, "ListenIps[0].AnnouncedIp"},
		{"unknown codec", `"MimeType": "audio/PCMA"`, `"MimeType": "audio/AMR"`, "RouterSettings.RtpCodecCapabilities[1].MimeType"},
		{"zero clock rate", `"ClockRate": 8000`, `"ClockRate": 0`, "RouterSettings.RtpCodecCapabilities[1].ClockRate"},
		{"duplicate key", `"RtcMinPort": 20000,`, `"RtcMinPort": 20000, "rtcminport": 20001,`, "MediasoupSettings.WorkerSettings.RtcMinPort: duplicate key"},
		{"syntax error", `"ServeMode": "Open"`, `"ServeMode": Open`, "line 109:20: expected a value"},
	}
	dir := t.TempDir()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			broken := strings.Replace(string(good), tt.old, tt.new, 1)
			if broken == string(good) {
				t.Fatalf("replacement %q not found in the fixture", tt.old)
			}
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".json")
			if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, errOut := runCheck(t, path, noEnv)
			if code != 2 {
				t.Errorf("case %d: exit %d, want 2", i, code)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("message %q does not contain %q", errOut, tt.want)
			}
		})
	}
}

// Env overrides are applied and validated like the file.
func TestCheckConfigEnv(t *testing.T) {
	env := map[string]string{"VCLASS_RTC_PORTS": "30000-30010", "VCLASS_ANNOUNCED_IP": "203.0.113.7"}
	code, out, errOut := runCheck(t, fixture, func(k string) string { return env[k] })
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, `"minPort": 30000`) || !strings.Contains(out, "203.0.113.7") {
		t.Errorf("overrides not applied:\n%s", out)
	}
	env["VCLASS_RTC_PORTS"] = "30010-30000"
	if code, _, errOut := runCheck(t, fixture, func(k string) string { return env[k] }); code != 2 || !strings.Contains(errOut, "VCLASS_RTC_PORTS") {
		t.Errorf("bad VCLASS_RTC_PORTS: exit %d, %q", code, errOut)
	}
}

// -debug-addr serves Go's profiles on a listener of its own.
func TestDebugAddrServesProfiles(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := serveDebug(ln, slog.New(slog.DiscardHandler))
	defer stop()
	res, err := http.Get("http://" + ln.Addr().String() + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "heap profile") {
		t.Errorf("GET /debug/pprof/heap: %d %.80q", res.StatusCode, body)
	}
}
