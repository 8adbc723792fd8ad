package e2e

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// mediaBinary, loadBinary and recorderBinary are built once for all tests
// (with the race detector when the tests have it). measuredMediaBinary is
// vclass-media without it, for the tests that measure what links carry:
// a race-instrumented server is several times slower, and its own delays
// read as congestion. measuredRecorderBinary is vclass-recorder without
// it, for the soak, which measures memory (the race detector's own grows
// with every goroutine ever run).
var mediaBinary, measuredMediaBinary, loadBinary, recorderBinary, measuredRecorderBinary string

func TestMain(m *testing.M) {
	if spec := os.Getenv(tcpSubscriberEnv); spec != "" {
		os.Exit(runTCPSubscriber(spec))
	}
	if spec := os.Getenv(netnsClientEnv); spec != "" {
		os.Exit(runNetnsClient(spec))
	}
	dir, err := os.MkdirTemp("", "vclass-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mediaBinary = filepath.Join(dir, "vclass-media")
	measuredMediaBinary = mediaBinary
	measuredRecorderBinary = recorderBinary
	loadBinary = filepath.Join(dir, "vclass-load")
	recorderBinary = filepath.Join(dir, "vclass-recorder")
	type build struct {
		bin, pkg string
		race     bool
	}
	builds := []build{
		{mediaBinary, "../cmd/vclass-media", raceBuild},
		{loadBinary, "../cmd/vclass-load", raceBuild},
		{recorderBinary, "../cmd/vclass-recorder", raceBuild},
	}
	if raceBuild {
		measuredMediaBinary = filepath.Join(dir, "vclass-media-measured")
		measuredRecorderBinary = filepath.Join(dir, "vclass-recorder-measured")
		builds = append(builds, build{measuredMediaBinary, "../cmd/vclass-media", false},
			build{measuredRecorderBinary, "../cmd/vclass-recorder", false})
	}
	for _, b := range builds {
		args := []string{"build", "-o", b.bin}
		if b.race {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, b.pkg)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", b.pkg+":", err)
			os.Exit(1)
		}
	}
	// The gates below decide how many parallel tests run at once, not
	// -parallel (GOMAXPROCS, two here: idle tests would wait behind busy
	// ones), unless it is given.
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		_ = flag.Set("test.parallel", "64")
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Parallel tests go through one of two gates. A test that keeps a core
// busy (browsers, encoders, recordings, soak cycles) calls parallel: two
// run at a time, one a core. A test that mostly waits (on ICE timeouts,
// on processes killed and started again, a few percent of a core when
// measured) calls parallelIdle and runs beside them, up to four at once.
// Either is released once the test and its cleanups are done.
var (
	busySlots = make(chan struct{}, 2)
	idleSlots = make(chan struct{}, 4)
)

func parallel(t *testing.T)     { gate(t, busySlots) }
func parallelIdle(t *testing.T) { gate(t, idleSlots) }

func gate(t *testing.T, slots chan struct{}) {
	t.Helper()
	t.Parallel()
	slots <- struct{}{}
	t.Cleanup(func() { <-slots }) // the first cleanup added: it runs last
}

// mediaServer is a running vclass-media process.
type mediaServer struct {
	*process
	URL string // http://127.0.0.1:port
	WS  string // ws://127.0.0.1:port/ws
}

// loopbackConfig is a mediasoup_config.json for tests: loopback only,
// ports in [lo, hi], and the given codecs (JSON array text). The ports
// lie below Linux's ephemeral ports (32768 on), which any process's
// outgoing socket (a browser's, a client's) may hold when the server
// starts.
func loopbackConfig(lo, hi int, codecs string) string {
	if lo > hi || hi >= 32768 {
		panic(fmt.Sprintf("loopbackConfig: ports %d-%d, want a range below 32768", lo, hi))
	}
	if codecs == "" {
		codecs = `[
		{"Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "Channels": 2},
		{"Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000}]`
	}
	return fmt.Sprintf(`{
  "MediasoupSettings": {
    "WorkerSettings": {"LogLevel": "debug", "RtcMinPort": %d, "RtcMaxPort": %d},
    "RouterSettings": {"RtpCodecCapabilities": %s},
    "WebRtcTransportSettings": {"ListenIps": [{"Ip": "127.0.0.1", "AnnouncedIp": "127.0.0.1"}]}
  },
  "MeetingServerSettings": {"ServeMode": "Open"},
  "AuthSettings": {"AllowEmptyTickets": true}
}`, lo, hi, codecs)
}

var urlLine = regexp.MustCompile(`open (http://\S+/) in a browser`)

// startMedia runs vclass-media with config text (written to a file) and
// extra environment, and waits until it serves HTTP.
func startMedia(t testing.TB, configText string, env ...string) *mediaServer {
	t.Helper()
	return startMediaAt(t, "127.0.0.1:0", configText, env...)
}

// startMediaAt runs vclass-media serving HTTP on addr.
func startMediaAt(t testing.TB, addr, configText string, env ...string) *mediaServer {
	t.Helper()
	return startMediaBinary(t, mediaBinary, addr, configText, env...)
}

// startMediaBinary runs the vclass-media binary bin serving HTTP on addr.
func startMediaBinary(t testing.TB, bin, addr, configText string, env ...string) *mediaServer {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "mediasoup_config.json")
	if err := os.WriteFile(path, []byte(configText), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", path, "-http", addr)
	cmd.Env = append(os.Environ(), env...)
	p, u := startProcess(t, "vclass-media", cmd, urlLine, 10*time.Second) // it promises 10 s after SIGTERM
	s := &mediaServer{process: p, URL: strings.TrimSuffix(u, "/")}
	s.WS = "ws" + strings.TrimPrefix(s.URL, "http") + "/ws"
	return s
}

// get fetches a path of the server.
func (s *mediaServer) get(t testing.TB, path string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
