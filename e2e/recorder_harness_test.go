package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testSecret signs tickets in the recorder tests (vclass-media verifies
// the recorder's tickets with it).
const testSecret = "e2e-recorder-secret-0123456789abcdef"

// recorderServer is a running vclass-recorder process.
type recorderServer struct {
	*process
	URL    string // https://127.0.0.1:port
	Dir    string // its working directory: records/ and logs/ are here
	client *http.Client
}

// testCert makes a certificate for 127.0.0.1 with the real openssl and
// exports it as PKCS#12 with OpenSSL 3's defaults; it returns the pool
// that trusts it.
func testCert(t testing.TB, dir, password string) (pfx string, pool *x509.CertPool) {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is not installed (deploy/scripts/test.sh installs it)")
		}
		t.Skip("openssl is not installed; run deploy/scripts/test.sh to install it")
	}
	key, crt := filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem")
	pfx = filepath.Join(dir, "recorder.pfx")
	for _, args := range [][]string{
		{"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
			"-subj", "/CN=wt-recorder.local", "-addext", "subjectAltName=IP:127.0.0.1,DNS:wt-recorder.local"},
		{"pkcs12", "-export", "-in", crt, "-inkey", key, "-out", pfx, "-passout", "pass:" + password},
	} {
		if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	pem, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return pfx, pool
}

// recorderConfig is a config.json in the fixture's shape for tests: HTTPS
// on a free loopback port and the given clients (JSON array text).
func recorderConfig(clients string) string {
	return fmt.Sprintf(`{
  "Logging": {"LogDir": "logs", "DebugMode": "true"},
  "Service": {
    "Kestrel": {"EndPoints": {"Https": {"Url": "https://127.0.0.1:0",
      "Certificate": {"Path": "recorder.pfx", "Password": "recpass", "AllowInvalid": "false"}}}},
    "Credentials": {"Username": "admin", "Password": "recsite"}
  },
  "Recording": {"RecordingDir": "records", "JoinTimeout": 8000, "Clients": %s}
}`, clients)
}

// oneClient is a client user1/user1 with slots and compose on or off.
func oneClient(slots int, compose bool) string {
	return fmt.Sprintf(`[{"Credentials": {"Username": "user1", "Password": "user1"}, "Host": "http://127.0.0.1",
	  "Slots": %d, "FfmpegConfig": {"StartDelay": "0", "CommandOutputOptions": "-pix_fmt yuv420p", "Compose": %v}}]`, slots, compose)
}

var apiLine = regexp.MustCompile(`API at (https?://\S+)/api/v1/recordings`)

// startRecorder runs vclass-recorder in dir (made when empty) with config
// text and the media server's address.
func startRecorder(t testing.TB, dir, configText string, media *mediaServer, env ...string) *recorderServer {
	t.Helper()
	return startRecorderIn(t, nil, dir, configText, media, env...)
}

// startRecorderIn runs it through a wrapper command line (for example
// unshare), nil for none.
func startRecorderIn(t testing.TB, wrapper []string, dir, configText string, media *mediaServer, env ...string) *recorderServer {
	t.Helper()
	return startRecorderBinary(t, recorderBinary, wrapper, dir, configText, media, env...)
}

// startRecorderBinary runs the vclass-recorder binary bin.
func startRecorderBinary(t testing.TB, bin string, wrapper []string, dir, configText string, media *mediaServer, env ...string) *recorderServer {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	_, pool := testCert(t, dir, "recpass")
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(configText), 0o644); err != nil {
		t.Fatal(err)
	}
	argv := append(append([]string(nil), wrapper...), bin, "-config", "config.json")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "VCLASS_MEDIA_URL="+media.WS, "VCLASS_AUTH_SECRET="+testSecret)
	cmd.Env = append(cmd.Env, env...)
	p, u := startProcess(t, "vclass-recorder", cmd, apiLine, 38*time.Second) // -shutdown-timeout 30 s and exit
	return &recorderServer{process: p, URL: u, Dir: dir,
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

// call makes an API request as user:pass and decodes a JSON answer into out.
func (r *recorderServer) call(t testing.TB, method, path, user, pass string, body any, out any) int {
	t.Helper()
	code, err := r.try(method, path, user, pass, body, out)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// try is call for a recorder that may be down: it returns what failed.
func (r *recorderServer) try(method, path, user, pass string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, r.URL+path, rd)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	res, err := r.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: %d %q: %w", method, path, res.StatusCode, data, err)
		}
	}
	return res.StatusCode, nil
}

// recording is the API's view of a job, as far as the tests read it.
type recording struct {
	ID     string `json:"id"`
	Room   string `json:"room"`
	State  string `json:"state"`
	Reason string `json:"reason"`
	Files  []struct {
		Name        string   `json:"name"`
		Size        int64    `json:"size"`
		Duration    float64  `json:"duration"`
		Participant string   `json:"participant"`
		UserID      string   `json:"userId"`
		Source      string   `json:"source"`
		Codecs      []string `json:"codecs"`
		Offset      float64  `json:"offset"`
		Layers      []struct {
			At           float64 `json:"at"`
			SpatialLayer int     `json:"spatialLayer"`
		} `json:"layers"`
	} `json:"files"`
	Participants []struct {
		Name   string   `json:"name"`
		UserID string   `json:"userId"`
		Files  []string `json:"files"`
	} `json:"participants"`
	Duration     float64    `json:"duration"`
	ComposeError string     `json:"composeError"`
	StartedAt    *time.Time `json:"startedAt"`
}

func (r *recorderServer) start(t testing.TB, user, pass, room string) recording {
	t.Helper()
	var rec recording
	if code := r.call(t, "POST", "/api/v1/recordings", user, pass, map[string]string{"room": room}, &rec); code != http.StatusCreated {
		t.Fatalf("start recording of %s: HTTP %d %+v", room, code, rec)
	}
	return rec
}

func (r *recorderServer) get(t testing.TB, user, pass, id string) recording {
	t.Helper()
	var rec recording
	if code := r.call(t, "GET", "/api/v1/recordings/"+id, user, pass, nil, &rec); code != http.StatusOK {
		t.Fatalf("get recording %s: HTTP %d", id, code)
	}
	return rec
}

// waitState polls a recording until it reaches state.
func (r *recorderServer) waitState(t testing.TB, user, pass, id, state string, within time.Duration) recording {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		rec := r.get(t, user, pass, id)
		if rec.State == state {
			return rec
		}
		if time.Now().After(deadline) {
			t.Fatalf("recording %s is %s (%s) after %v, want %s", id, rec.State, rec.Reason, within, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ffprobeValue runs ffprobe with args and returns its trimmed output.
func ffprobeValue(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", append([]string{"-v", "error"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// decodeErrors decodes every frame of every stream of a file with ffprobe
// (no muxer in the way) and returns what it complained of.
func decodeErrors(t testing.TB, path string) string {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out)
	}
	var complaints []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if _, err := strconv.Atoi(strings.TrimSpace(line)); err != nil {
			complaints = append(complaints, line)
		}
	}
	return strings.Join(complaints, "\n")
}

func fileDuration(t testing.TB, path string) float64 {
	t.Helper()
	d, err := strconv.ParseFloat(ffprobeValue(t, "-show_entries", "format=duration", "-of", "csv=p=0", path), 64)
	if err != nil {
		t.Fatalf("%s: no duration: %v", path, err)
	}
	return d
}

// ctx30 is a context for a test's media clients.
func ctx30(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}
