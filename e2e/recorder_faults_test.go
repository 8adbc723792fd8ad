package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vclass/vclass/recorder/mkv"
)

// A job that cannot join fails with the reason once the join timeout is
// over: the room is not live, or the media server is not there.
func TestRecordingThatCannotJoinFails(t *testing.T) {
	parallel(t)
	media := startMedia(t, loopbackConfig(27100, 27109, ""), "VCLASS_AUTH_SECRET="+testSecret)
	cfg := strings.Replace(recorderConfig(oneClient(2, false)), `"JoinTimeout": 8000`, `"JoinTimeout": 2000`, 1)
	rec := startRecorder(t, "", cfg, media)
	job := rec.start(t, "user1", "user1", "nobody-here")
	failed := rec.waitState(t, "user1", "user1", job.ID, "failed", 10*time.Second)
	if !strings.Contains(failed.Reason, "not live") {
		t.Errorf("reason %q, want it to say the room is not live", failed.Reason)
	}

	gone := startRecorder(t, "", cfg, media, "VCLASS_MEDIA_URL=ws://127.0.0.1:9/ws")
	job = gone.start(t, "user1", "user1", "math")
	failed = gone.waitState(t, "user1", "user1", job.ID, "failed", 10*time.Second)
	if !strings.Contains(failed.Reason, "connection refused") {
		t.Errorf("reason %q, want connection refused", failed.Reason)
	}
}

// In a Pull room (where no one receives what they did not ask for) the
// recorder gets everything; the room closing ends its recordings
// cleanly: done, files finished.
func TestRoomClosingStopsRecording(t *testing.T) {
	parallel(t)
	media := startMedia(t, loopbackConfig(27110, 27119, ""), "VCLASS_AUTH_SECRET="+testSecret, "VCLASS_API_KEY=e2e-api-key-0123456789abcdef0123456789")
	rec := startRecorder(t, "", recorderConfig(oneClient(2, false)), media)
	req, _ := http.NewRequest("POST", media.URL+"/api/v1/rooms", strings.NewReader(`{"id": "closing", "serveMode": "Pull"}`))
	req.Header.Set("Authorization", "Bearer e2e-api-key-0123456789abcdef0123456789")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("creating the Pull room: HTTP %d", res.StatusCode)
	}
	ivf, ogg := syncClip(t, t.TempDir(), 30)
	publishClip(t, ctx30(t), media.WS, "closing", "Cid", ivf, ogg)
	job := rec.start(t, "user1", "user1", "closing")
	rec.waitState(t, "user1", "user1", job.ID, "recording", 15*time.Second)
	time.Sleep(3 * time.Second)
	req, _ = http.NewRequest("DELETE", media.URL+"/api/v1/rooms/closing", nil)
	req.Header.Set("Authorization", "Bearer e2e-api-key-0123456789abcdef0123456789")
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("closing the room: HTTP %d", res.StatusCode)
	}
	done := rec.waitState(t, "user1", "user1", job.ID, "done", 15*time.Second)
	if !strings.Contains(done.Reason, "room closed") {
		t.Errorf("reason %q, want the room closed", done.Reason)
	}
	checkFinished(t, filepath.Join(rec.Dir, "records", job.ID, "Cid.webm"), 1)
}

// checkFinished says a file was closed properly: its segment has a size,
// it has cues, and ffprobe reads a duration of at least min seconds.
func checkFinished(t *testing.T, path string, min float64) {
	t.Helper()
	info, err := mkv.Inspect(path)
	if err != nil || !info.Finished || !info.Cues || info.Duration.Seconds() < min {
		t.Errorf("%s: %+v (%v), want finished with cues, at least %v s", path, info, err, min)
	}
	if fd := fileDuration(t, path); fd < min {
		t.Errorf("%s: ffprobe duration %.2f, want at least %v s", path, fd, min)
	}
}

// SIGTERM finishes every recording before the recorder exits: the jobs
// are done, not interrupted, after a restart.
func TestRecorderSIGTERMFinishesRecordings(t *testing.T) {
	parallel(t)
	media := startMedia(t, loopbackConfig(27120, 27129, ""), "VCLASS_AUTH_SECRET="+testSecret)
	dir := t.TempDir()
	rec := startRecorder(t, dir, recorderConfig(oneClient(2, true)), media)
	ctx := ctx30(t)
	ivf, ogg := syncClip(t, t.TempDir(), 30)
	publishClip(t, ctx, media.WS, "term1", "Dan", ivf, ogg)
	publishClip(t, ctx, media.WS, "term2", "Eve", ivf, ogg)
	jobs := []recording{rec.start(t, "user1", "user1", "term1"), rec.start(t, "user1", "user1", "term2")}
	for _, j := range jobs {
		rec.waitState(t, "user1", "user1", j.ID, "recording", 15*time.Second)
	}
	time.Sleep(3 * time.Second)
	began := time.Now()
	rec.Stop(t)
	t.Logf("SIGTERM to exit: %v", time.Since(began))

	again := startRecorder(t, dir, recorderConfig(oneClient(2, true)), media)
	for i, j := range jobs {
		got := again.get(t, "user1", "user1", j.ID)
		if got.State != "done" || !strings.Contains(got.Reason, "shut down") {
			t.Errorf("after SIGTERM and restart job %s is %s (%q), want done because the recorder shut down", j.ID, got.State, got.Reason)
		}
		name := []string{"Dan.webm", "Eve.webm"}[i]
		checkFinished(t, filepath.Join(dir, "records", j.ID, name), 2)
		if _, err := os.Stat(filepath.Join(dir, "records", j.ID, "manifest.json")); err != nil {
			t.Errorf("no manifest after SIGTERM: %v", err)
		}
	}
}

// A full disk fails the job with a reason that says so and keeps what was
// written: the recorder runs in its own mount namespace with a small
// tmpfs as its recording folder.
func TestRecordingOnAFullDisk(t *testing.T) {
	parallel(t)
	unshare, err := exec.LookPath("unshare")
	if err == nil {
		err = exec.Command(unshare, "-rm", "true").Run()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("unshare -rm (util-linux, user namespaces) is needed: %v", err)
		}
		t.Skipf("unshare -rm does not work here: %v", err)
	}
	dir := t.TempDir()
	ivf, ogg := syncClip(t, t.TempDir(), 40)
	if err := os.Mkdir(filepath.Join(dir, "records"), 0o755); err != nil {
		t.Fatal(err)
	}
	media := startMedia(t, loopbackConfig(27130, 27139, ""), "VCLASS_AUTH_SECRET="+testSecret)
	wrapper := []string{unshare, "-rm", "sh", "-c", `mount -t tmpfs -o size=160k none records && exec "$0" "$@"`}
	rec := startRecorderIn(t, wrapper, dir, recorderConfig(oneClient(2, false)), media)
	publishClip(t, ctx30(t), media.WS, "full", "Fay", ivf, ogg)
	job := rec.start(t, "user1", "user1", "full")
	began := time.Now()
	failed := rec.waitState(t, "user1", "user1", job.ID, "failed", 40*time.Second)
	t.Logf("failed %v after the start: %s", time.Since(began), failed.Reason)
	if !strings.Contains(failed.Reason, "disk full") || !strings.Contains(failed.Reason, "no space left") {
		t.Errorf("reason %q, want disk full: no space left on device", failed.Reason)
	}
	var code int
	body := rec.download(t, "user1", "user1", job.ID, "Fay.webm", "", &code)
	if code != 200 || len(body) < 64<<10 {
		t.Fatalf("download of the file written before the disk filled: HTTP %d, %d bytes", code, len(body))
	}
	kept := filepath.Join(t.TempDir(), "Fay.webm")
	if err := os.WriteFile(kept, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if errs := decodeErrors(t, kept); errs != "" {
		t.Errorf("the kept file does not decode cleanly:\n%s", errs)
	}
	if d := fileDuration(t, kept); d < 2 {
		t.Errorf("kept file plays %.2f s, want the seconds written before the disk filled", d)
	}
}

// Callbacks carry every state change in order to the client's own Host;
// StartDelay holds the start back; /metrics counts slots, recordings and
// bytes; the log goes to LogDir as JSON lines.
func TestRecorderCallbacksMetricsAndLogs(t *testing.T) {
	parallel(t)
	var mu sync.Mutex
	var states []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rec recording
		if err := json.NewDecoder(r.Body).Decode(&rec); err == nil {
			mu.Lock()
			states = append(states, rec.State)
			mu.Unlock()
		}
	}))
	defer hook.Close()
	media := startMedia(t, loopbackConfig(27180, 27189, ""), "VCLASS_AUTH_SECRET="+testSecret)
	clients := `[{"Credentials": {"Username": "user1", "Password": "user1"}, "Host": "` + hook.URL + `", "Slots": 3,
	  "FfmpegConfig": {"StartDelay": "1500", "Compose": false}}]`
	rec := startRecorder(t, "", recorderConfig(clients), media)
	if res, err := rec.client.Get(rec.URL + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	ivf, ogg := syncClip(t, t.TempDir(), 20)
	publishClip(t, ctx30(t), media.WS, "hooks", "Lea", ivf, ogg)

	var started struct {
		ID        string    `json:"id"`
		CreatedAt time.Time `json:"createdAt"`
	}
	if code := rec.call(t, "POST", "/api/v1/recordings", "user1", "user1",
		map[string]string{"room": "hooks", "callbackUrl": hook.URL + "/recordings/hook"}, &started); code != 201 {
		t.Fatalf("start with a callback: HTTP %d", code)
	}
	rec.waitState(t, "user1", "user1", started.ID, "recording", 15*time.Second)
	var got struct {
		StartedAt time.Time `json:"startedAt"`
	}
	rec.call(t, "GET", "/api/v1/recordings/"+started.ID, "user1", "user1", nil, &got)
	if wait := got.StartedAt.Sub(started.CreatedAt); wait < 1500*time.Millisecond {
		t.Errorf("recording began %v after the start, want StartDelay 1.5 s at least", wait)
	}
	metrics := func() string {
		res, err := rec.client.Get(rec.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	m := metrics()
	for _, want := range []string{`vclass_recorder_slots{client="user1",state="used"} 1`, `vclass_recorder_slots{client="user1",state="free"} 2`,
		`vclass_recorder_recordings{state="recording"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	time.Sleep(2 * time.Second)
	rec.call(t, "POST", "/api/v1/recordings/"+started.ID+"/stop", "user1", "user1", nil, nil)
	rec.waitState(t, "user1", "user1", started.ID, "done", 30*time.Second)
	waitFor(t, 5*time.Second, "the done callback", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(states) == 4
	})
	mu.Lock()
	if got := strings.Join(states, ","); got != "starting,recording,stopping,done" {
		t.Errorf("callbacks %s, want starting,recording,stopping,done", got)
	}
	mu.Unlock()
	m = metrics()
	if !strings.Contains(m, `vclass_recorder_slots{client="user1",state="used"} 0`) || !strings.Contains(m, `vclass_recorder_recordings{state="done"} 1`) ||
		strings.Contains(m, "vclass_recorder_bytes_written_total 0\n") {
		t.Errorf("metrics after the recording:\n%s", grepLines(m, "vclass_recorder"))
	}
	data, err := os.ReadFile(filepath.Join(rec.Dir, "logs", "vclass-recorder.log"))
	if err != nil || !strings.Contains(string(data), `"msg":"recording state"`) {
		t.Errorf("log file: %v, %d bytes without JSON state lines", err, len(data))
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The media server dies under a recording and comes back: the recorder
// joins again on its own, the recording goes on in the same files, and
// the outage stays a gap in time.
func TestRecordingSurvivesMediaServerRestart(t *testing.T) {
	parallel(t)
	// Fixed, below Linux's ephemeral ports, so that no connection can
	// take the port while the server is down.
	const addr = "127.0.0.1:27750"
	cfg := loopbackConfig(27190, 27199, "")
	media := startMediaAt(t, addr, cfg, "VCLASS_AUTH_SECRET="+testSecret)
	rec := startRecorder(t, "", recorderConfig(oneClient(2, false)), media)
	ivf, ogg := syncClip(t, t.TempDir(), 30)
	ctx := ctx30(t)
	publishClip(t, ctx, media.WS, "phoenix", "Max", ivf, ogg)
	job := rec.start(t, "user1", "user1", "phoenix")
	rec.waitState(t, "user1", "user1", job.ID, "recording", 15*time.Second)
	time.Sleep(3 * time.Second)

	_ = media.cmd.Process.Kill()
	<-media.done
	time.Sleep(2 * time.Second)
	if got := rec.get(t, "user1", "user1", job.ID); got.State != "recording" {
		t.Fatalf("with the media server down the job is %s (%s), want still recording", got.State, got.Reason)
	}
	media2 := startMediaAt(t, addr, cfg, "VCLASS_AUTH_SECRET="+testSecret)
	publishClip(t, ctx, media2.WS, "phoenix", "Max", ivf, ogg)
	waitFor(t, 15*time.Second, "the recorder back in the room", func() bool {
		return strings.Contains(rec.Log(), "joined the room again")
	})
	time.Sleep(4 * time.Second)
	rec.call(t, "POST", "/api/v1/recordings/"+job.ID+"/stop", "user1", "user1", nil, nil)
	done := rec.waitState(t, "user1", "user1", job.ID, "done", 30*time.Second)
	if len(done.Files) != 2 || done.Files[0].Name != "Max.webm" {
		t.Fatalf("files %+v, want Max.webm (one file across the restart) and the manifest", done.Files)
	}
	path := filepath.Join(rec.Dir, "records", job.ID, "Max.webm")
	gap, at := largestGap(packetTimes(t, path, "v"))
	if gap < 1.5 {
		t.Errorf("largest gap in the video %.2f s at %.2f s, want the outage (over 2 s) kept", gap, at)
	}
	if d := fileDuration(t, path); d < 8 {
		t.Errorf("Max.webm lasts %.2f s, want both parts with the gap (about 10 s)", d)
	}
	checkFinished(t, path, 8)
}

// The binaries check their own /healthz for a container HEALTHCHECK: 0
// when the server answers, 1 when it does not.
func TestHealthcheckFlags(t *testing.T) {
	parallel(t)
	media := startMedia(t, loopbackConfig(27200, 27209, ""), "VCLASS_AUTH_SECRET="+testSecret)
	rec := startRecorder(t, "", recorderConfig(oneClient(1, false)), media)
	mediaAddr := strings.TrimPrefix(media.URL, "http://")
	check := func(cmd *exec.Cmd) int {
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			t.Logf("%v: %s", cmd.Args, out)
			return ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	if code := check(exec.Command(mediaBinary, "-healthcheck", "-http", mediaAddr)); code != 0 {
		t.Errorf("vclass-media -healthcheck: exit %d, want 0", code)
	}
	recCheck := exec.Command(recorderBinary, "-healthcheck", "-config", "config.json")
	recCheck.Dir = rec.Dir
	recCheck.Env = append(os.Environ(), "VCLASS_RECORDER_URL="+rec.URL)
	if code := check(recCheck); code != 0 {
		t.Errorf("vclass-recorder -healthcheck: exit %d, want 0", code)
	}
	media.Stop(t)
	if code := check(exec.Command(mediaBinary, "-healthcheck", "-http", mediaAddr)); code != 1 {
		t.Errorf("vclass-media -healthcheck of a stopped server: exit %d, want 1", code)
	}
}
