package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/client"
)

// syncClip makes a clip of secs seconds with ffmpeg (flashBeep): VP8 in
// IVF and Opus in Ogg (20 ms packets).
func syncClip(t *testing.T, dir string, secs int) (ivf, ogg string) {
	t.Helper()
	ivf, ogg = filepath.Join(dir, "sync.ivf"), filepath.Join(dir, "sync.ogg")
	flashBeep(t, secs,
		[]string{"-c:v", "libvpx", "-g", "30", "-b:v", "400k", "-deadline", "realtime", "-cpu-used", "8", ivf},
		[]string{"-c:a", "libopus", "-page_duration", "20000", ogg})
	return ivf, ogg
}

// flashBeep makes secs seconds of black 320x240 video at 30 fps with a
// white flash, and of 48 kHz silence with a 1 kHz beep, both at every
// whole second and lasting 100 ms; each written by ffmpeg with the
// arguments given (the output file last).
func flashBeep(t *testing.T, secs int, video, audio []string) {
	t.Helper()
	ffmpeg := ffmpegPath(t)
	d := strconv.Itoa(secs)
	for _, args := range [][]string{
		append([]string{"-f", "lavfi", "-i", "color=c=black:s=320x240:r=30:d=" + d,
			"-vf", `drawbox=enable='lt(mod(t\,1)\,0.1)':x=0:y=0:w=iw:h=ih:color=white:t=fill`}, video...),
		append([]string{"-f", "lavfi", "-i", `aevalsrc='if(lt(mod(t\,1)\,0.1)\,0.5*sin(2*PI*1000*t)\,0)':s=48000:d=` + d}, audio...),
	} {
		if out, err := exec.Command(ffmpeg, append([]string{"-v", "error", "-y"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
}

// publishClip joins room as name and sends the clip with real RTP timing,
// audio and video started together.
func publishClip(t *testing.T, ctx context.Context, wsURL, room, name, ivf, ogg string) (*client.Client, []client.Producer) {
	t.Helper()
	return publishClipWith(t, ctx, client.Options{URL: wsURL, DisplayName: name}, room, ivf, ogg)
}

// publishClipWith is publishClip with the client's options (a ticket).
func publishClipWith(t *testing.T, ctx context.Context, opts client.Options, room, ivf, ogg string) (*client.Client, []client.Producer) {
	t.Helper()
	name := opts.DisplayName
	opts.Sources = []string{"audio:mic", "video:cam"}
	c, err := client.Dial(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.JoinRoom(ctx, room); err != nil {
		t.Fatal(err)
	}
	videoSrc, mime, err := client.IVFFile(ivf)
	if err != nil {
		t.Fatal(err)
	}
	audioSrc, err := client.OggOpusFile(ogg)
	if err != nil {
		t.Fatal(err)
	}
	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}, "cam", name)
	audio, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", name)
	prods, err := c.Publish(ctx, client.LocalTrack{Track: video, Source: "video:cam"}, client.LocalTrack{Track: audio, Source: "audio:mic"})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = client.Play(ctx, video, videoSrc) }()
	go func() { _ = client.Play(ctx, audio, audioSrc) }()
	return c, prods
}

// flashOnsets are the times of frames that turn white after a dark one.
func flashOnsets(t testing.TB, path string) []float64 {
	t.Helper()
	out := ffprobeValue(t, "-f", "lavfi", "-i", "movie="+path+",signalstats",
		"-show_entries", "frame=pts_time:frame_tags=lavfi.signalstats.YAVG", "-of", "csv=p=0")
	var onsets []float64
	dark := false
	for _, line := range strings.Split(out, "\n") {
		ts, y, _ := strings.Cut(line, ",")
		at, err1 := strconv.ParseFloat(ts, 64)
		v, err2 := strconv.ParseFloat(y, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if v > 100 && dark {
			onsets = append(onsets, at)
		}
		dark = v < 60
	}
	return onsets
}

var silenceEnd = regexp.MustCompile(`silence_end: ([0-9.]+)`)

// beepOnsets are the times where sound starts after at least 0.3 s of
// silence.
func beepOnsets(t testing.TB, path string) []float64 {
	t.Helper()
	out, err := exec.Command("ffmpeg", "-nostdin", "-i", path, "-vn", "-af", "silencedetect=n=-30dB:d=0.3", "-f", "null", "-").CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg silencedetect %s: %v\n%s", path, err, out)
	}
	var onsets []float64
	for _, m := range silenceEnd.FindAllStringSubmatch(string(out), -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		onsets = append(onsets, v)
	}
	return onsets
}

// syncOnsets are the flashes and the beeps of the file at path but the
// first of each: a file (or a tile of class.mp4) that begins in the middle
// of a flash or a beep shows one where it begins, which says nothing of
// their timing.
func syncOnsets(t testing.TB, path string) (flashes, beeps []float64) {
	t.Helper()
	flashes, beeps = flashOnsets(t, path), beepOnsets(t, path)
	if len(flashes) > 0 {
		flashes = flashes[1:]
	}
	if len(beeps) > 0 {
		beeps = beeps[1:]
	}
	return flashes, beeps
}

// avOffsets pairs each flash with the nearest beep and returns video time
// minus audio time per pair, in time order.
func avOffsets(t testing.TB, path string) []float64 {
	t.Helper()
	flashes, beeps := syncOnsets(t, path)
	var diffs []float64
	for _, f := range flashes {
		best := math.Inf(1)
		for _, b := range beeps {
			if math.Abs(f-b) < math.Abs(best) {
				best = f - b
			}
		}
		if math.Abs(best) < 0.4 {
			diffs = append(diffs, best)
		}
	}
	if len(diffs) < 6 {
		t.Fatalf("%s: only %d flash/beep pairs (flashes %v, beeps %v)", path, len(diffs), flashes, beeps)
	}
	return diffs
}

// audioLag is how much later than the sender's clock the recorder places
// audio: where a browser plays it (docs/recorder.md).
const audioLag = 0.030

// checkSync holds each flash's distance from its beep, at the start and
// at the end, to want within 15 ms.
func checkSync(t *testing.T, what string, diffs []float64, want float64) {
	t.Helper()
	ms := make([]string, len(diffs))
	for i, d := range diffs {
		ms[i] = strconv.FormatFloat(d*1000, 'f', 1, 64)
	}
	t.Logf("%s: video minus audio per flash (ms): %s", what, strings.Join(ms, " "))
	for i, d := range diffs {
		if (i < 3 || i >= len(diffs)-3) && math.Abs(d-want) > 0.015 {
			t.Errorf("%s: flash %d is %.1f ms off its beep, want %.1f within 15 ms", what, i, d*1000, want*1000)
		}
	}
}

// A Go client sends a clip with a flash and a beep every second; the
// recording of 20 s keeps them as they were sent at the start and at the
// end (but for the audio placed where a browser plays it, and Opus's
// 6.5 ms of look-ahead), and lasts as long as the wall clock says; the
// same for class.mp4.
func TestRecordingKeepsAudioAndVideoInSync(t *testing.T) {
	parallel(t)
	dir := t.TempDir()
	ivf, ogg := syncClip(t, dir, 40)
	media := startMedia(t, loopbackConfig(27000, 27019, ""), "VCLASS_AUTH_SECRET="+testSecret)
	rec := startRecorder(t, "", recorderConfig(oneClient(2, true)), media)
	ctx := ctx30(t)
	publishClip(t, ctx, media.WS, "sync", "Ann", ivf, ogg)

	job := rec.start(t, "user1", "user1", "sync")
	rec.waitState(t, "user1", "user1", job.ID, "recording", 15*time.Second)
	began := time.Now()
	time.Sleep(20 * time.Second)
	var stopped recording
	if code := rec.call(t, "POST", "/api/v1/recordings/"+job.ID+"/stop", "user1", "user1", nil, &stopped); code != 202 {
		t.Fatalf("stop: HTTP %d", code)
	}
	wall := time.Since(began).Seconds()
	done := rec.waitState(t, "user1", "user1", job.ID, "done", 90*time.Second)
	if done.ComposeError != "" {
		t.Fatalf("compose failed: %s", done.ComposeError)
	}
	files := map[string]float64{}
	for _, f := range done.Files {
		files[f.Name] = f.Offset
	}
	jobDir := filepath.Join(rec.Dir, "records", job.ID)
	ann := filepath.Join(jobDir, "Ann.webm")
	if _, ok := files["Ann.webm"]; !ok {
		t.Fatalf("files %+v, want Ann.webm", done.Files)
	}
	d := fileDuration(t, ann)
	if got := files["Ann.webm"] + d; math.Abs(got-wall) > 0.5 {
		t.Errorf("Ann.webm: offset %.3f + duration %.3f = %.3f s, want the wall time %.3f within 0.5 s", files["Ann.webm"], d, got, wall)
	}
	checkSync(t, "Ann.webm", avOffsets(t, ann), -audioLag-0.0065)

	mp4 := filepath.Join(jobDir, "class.mp4")
	if cd := fileDuration(t, mp4); math.Abs(cd-wall) > 0.5 {
		t.Errorf("class.mp4 lasts %.3f s, want the wall time %.3f within 0.5 s", cd, wall)
	}
	if codecs := ffprobeValue(t, "-show_entries", "stream=codec_name", "-of", "csv=p=0", mp4); codecs != "h264\naac" {
		t.Errorf("class.mp4 codecs %q, want h264 and aac", codecs)
	}
	checkSync(t, "class.mp4", avOffsets(t, mp4), -audioLag-0.0065)
}

// Three browsers in a class, recorded 10 s: one file per participant with
// VP8 and Opus, each about as long as the recording, and a manifest that
// lists them.
func TestRecordingThreeBrowsers(t *testing.T) {
	parallel(t)
	media := startMedia(t, loopbackConfig(27020, 27059, ""), "VCLASS_AUTH_SECRET="+testSecret)
	rec := startRecorder(t, "", recorderConfig(oneClient(2, false)), media)
	var pages []*page
	for i := range 3 {
		name := fmt.Sprintf("pupil%d", i)
		p := openPage(t, classURL(media, "rec-class", name, ""), name)
		waitFor(t, 15*time.Second, name+" joined", func() bool { return p.peerID() != "" })
		pages = append(pages, p)
	}
	job := rec.start(t, "user1", "user1", "rec-class")
	rec.waitState(t, "user1", "user1", job.ID, "recording", 15*time.Second)
	began := time.Now()
	// The first pupil shares a screen during the recording: a file of its own.
	// Once the others decode it, 6 s more are recorded (a busy machine may
	// take seconds to start the share: seen in CI).
	time.Sleep(2 * time.Second)
	if err := pages[0].click("#screen-button"); err != nil {
		t.Fatalf("share screen: %v", err)
	}
	waitFor(t, 20*time.Second, "pupil1 decoding pupil0's screen", func() bool {
		frames, _ := pages[1].stats().inboundFrom(pages[0].peerID(), "video:screen")
		return frames > 5
	})
	time.Sleep(6 * time.Second)
	// The recorder is invisible: each page sees the two others only.
	for _, p := range pages {
		if n := len(p.peers()); n != 2 {
			t.Errorf("%s sees %d peers, want 2 (the recorder is invisible)", p.name, n)
		}
	}
	rec.call(t, "POST", "/api/v1/recordings/"+job.ID+"/stop", "user1", "user1", nil, nil)
	wall := time.Since(began).Seconds()
	done := rec.waitState(t, "user1", "user1", job.ID, "done", 60*time.Second)

	jobDir := filepath.Join(rec.Dir, "records", job.ID)
	var man struct {
		Room  string `json:"room"`
		Files []struct {
			Name        string   `json:"name"`
			Participant string   `json:"participant"`
			Source      string   `json:"source"`
			Codecs      []string `json:"codecs"`
			Offset      float64  `json:"offset"`
			Duration    float64  `json:"duration"`
		} `json:"files"`
	}
	data, err := os.ReadFile(filepath.Join(jobDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &man); err != nil {
		t.Fatal(err)
	}
	if man.Room != "rec-class" || len(man.Files) != 4 {
		t.Fatalf("manifest room %q with %d files, want rec-class and 4 (three pupils, one screen):\n%s", man.Room, len(man.Files), data)
	}
	screen := false
	for _, f := range man.Files {
		if f.Name == "pupil0-screen.webm" && f.Participant == "pupil0" && f.Source == "screen" {
			screen = true
			path := filepath.Join(jobDir, f.Name)
			if codecs := ffprobeValue(t, "-show_entries", "stream=codec_name", "-of", "csv=p=0", path); codecs != "vp8" {
				t.Errorf("screen file codecs %q, want vp8", codecs)
			}
			if d := fileDuration(t, path); d < 5.5 || f.Offset < 1.5 {
				t.Errorf("screen file: offset %.2f s, %.2f s long; want it from 2 s or later (the share's start) to the end, 6 s after the others decoded it", f.Offset, d)
			}
		}
	}
	if !screen {
		t.Errorf("no pupil0-screen.webm in the manifest:\n%s", data)
	}
	for i, p := range pages {
		f := man.Files[i]
		want := fmt.Sprintf("pupil%d", i)
		found := false
		for _, mf := range man.Files {
			if mf.Participant == want && mf.Source == "camera" {
				f, found = mf, true
			}
		}
		if !found || f.Name != want+".webm" || f.Source != "camera" {
			t.Errorf("manifest has no camera file %s.webm for %s:\n%s", want, p.name, data)
			continue
		}
		path := filepath.Join(jobDir, f.Name)
		codecs := ffprobeValue(t, "-show_entries", "stream=codec_name", "-of", "csv=p=0", path)
		if got := strings.Join(strings.Fields(codecs), ","); got != strings.Join(f.Codecs, ",") || !strings.Contains(got, "vp8") || !strings.Contains(got, "opus") {
			t.Errorf("%s: ffprobe codecs %q, manifest %v, want vp8 and opus in both", f.Name, got, f.Codecs)
		}
		d := fileDuration(t, path)
		if math.Abs(d-f.Duration) > 0.1 {
			t.Errorf("%s: ffprobe duration %.3f, manifest %.3f", f.Name, d, f.Duration)
		}
		if f.Offset < 0 || f.Offset > 8 || math.Abs(f.Offset+d-wall) > 1 {
			t.Errorf("%s: offset %.3f s and duration %.3f s, want it to cover the %.3f s recorded", f.Name, f.Offset, d, wall)
		}
		t.Logf("%s: offset %.3f s, duration %.3f s, codecs %v", f.Name, f.Offset, d, f.Codecs)
	}
	if len(done.Files) != 5 { // three participants, a screen and the manifest
		t.Errorf("API lists %d files, want 5: %+v", len(done.Files), done.Files)
	}
}

// kill -9 in the middle of a recording: every file ffprobe reads, most of
// the elapsed time plays, and after a restart the job is interrupted with
// its files listed.
func TestRecorderKilledMidRecording(t *testing.T) {
	parallel(t)
	dir := t.TempDir()
	ivf, ogg := syncClip(t, dir, 40)
	media := startMedia(t, loopbackConfig(27060, 27079, ""), "VCLASS_AUTH_SECRET="+testSecret)
	recDir := t.TempDir()
	rec := startRecorder(t, recDir, recorderConfig(oneClient(2, true)), media)
	ctx := ctx30(t)
	publishClip(t, ctx, media.WS, "crash", "Bob", ivf, ogg)
	job := rec.start(t, "user1", "user1", "crash")
	rec.waitState(t, "user1", "user1", job.ID, "recording", 15*time.Second)
	began := time.Now()
	time.Sleep(10 * time.Second)
	rec.Kill()
	elapsed := time.Since(began).Seconds()

	jobDir := filepath.Join(recDir, "records", job.ID)
	entries, _ := os.ReadDir(jobDir)
	var media0 []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".webm") || strings.HasSuffix(e.Name(), ".mkv") {
			media0 = append(media0, e.Name())
		}
	}
	if len(media0) != 1 {
		t.Fatalf("files after kill -9: %v, want Bob.webm", entries)
	}
	for _, name := range media0 {
		path := filepath.Join(jobDir, name)
		if errs := decodeErrors(t, path); errs != "" {
			t.Errorf("%s: it does not decode cleanly:\n%s", name, errs)
		}
		last := 0.0
		for _, line := range strings.Split(ffprobeValue(t, "-select_streams", "v", "-show_entries", "frame=pts_time", "-of", "csv=p=0", path), "\n") {
			if v, err := strconv.ParseFloat(strings.TrimSpace(line), 64); err == nil {
				last = max(last, v)
			}
		}
		if last < 0.8*elapsed-1 { // the file starts up to a second after the recording
			t.Errorf("%s: decodable video up to %.2f s of the %.2f s recorded before the kill, want at least 80%%", name, last, elapsed)
		}
		t.Logf("%s: decodable up to %.2f s of %.2f s; header says %.2f s", name, last, elapsed, fileDuration(t, path))
	}

	rec2 := startRecorder(t, recDir, recorderConfig(oneClient(2, true)), media)
	after := rec2.get(t, "user1", "user1", job.ID)
	if after.State != "interrupted" || after.Reason == "" {
		t.Errorf("after restart the job is %q (%q), want interrupted with a reason", after.State, after.Reason)
	}
	if len(after.Files) != 1 || after.Files[0].Name != "Bob.webm" || after.Files[0].Size == 0 || after.Files[0].Duration < 0.8*elapsed-1 {
		t.Errorf("interrupted job lists files %+v, want Bob.webm with its size and duration", after.Files)
	}
	// Its file downloads whole.
	var code int
	body := rec2.download(t, "user1", "user1", job.ID, "Bob.webm", "", &code)
	if st, _ := os.Stat(filepath.Join(jobDir, "Bob.webm")); code != 200 || int64(len(body)) != st.Size() {
		t.Errorf("download: HTTP %d, %d bytes, want 200 and %d", code, len(body), st.Size())
	}
}

// download fetches a file of a recording, with an optional Range header.
func (r *recorderServer) download(t testing.TB, user, pass, id, name, rng string, code *int) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", r.URL+"/api/v1/recordings/"+id+"/files/"+name, nil)
	req.SetBasicAuth(user, pass)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	res, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	*code = res.StatusCode
	b, _ := io.ReadAll(res.Body)
	return b
}

// Slots, logins and files: a client with two slots gets 429 for a third
// recording and succeeds once one stopped; wrong credentials get 401; a
// client sees only its own recordings; no file name leaves the folder.
func TestRecorderSlotsAndAccess(t *testing.T) {
	parallel(t)
	media := startMedia(t, loopbackConfig(27080, 27099, ""), "VCLASS_AUTH_SECRET="+testSecret)
	clients := `[{"Credentials": {"Username": "user1", "Password": "user1"}, "Host": "http://127.0.0.1:9", "Slots": 2},
	  {"Credentials": {"Username": "user2", "Password": "pw2"}, "Host": "https://portal2.local", "Slots": 1, "RecordingDir": "records2"}]`
	rec := startRecorder(t, "", recorderConfig(clients), media)
	ctx := ctx30(t)
	for _, room := range []string{"s1", "s2", "s3"} {
		p := joinParticipant(t, ctx, media.WS, room, "T-"+room, true)
		_ = p
	}

	for _, creds := range [][2]string{{"", ""}, {"user1", "wrong"}, {"nobody", "user1"}, {"admin", "user1"}} {
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if code := rec.call(t, "GET", "/api/v1/recordings", creds[0], creds[1], nil, &e); code != 401 || e.Error.Code != "unauthorized" {
			t.Errorf("credentials %q: HTTP %d %q, want 401 unauthorized", creds, code, e.Error.Code)
		}
	}

	r1 := rec.start(t, "user1", "user1", "s1")
	r2 := rec.start(t, "user1", "user1", "s2")
	var full struct {
		Error struct {
			Code   string   `json:"code"`
			Slots  int      `json:"slots"`
			Active []string `json:"active"`
			Frees  string   `json:"slotFrees"`
		} `json:"error"`
	}
	if code := rec.call(t, "POST", "/api/v1/recordings", "user1", "user1", map[string]string{"room": "s3"}, &full); code != 429 ||
		full.Error.Code != "slotsFull" || full.Error.Slots != 2 || len(full.Error.Active) != 2 || full.Error.Frees == "" {
		t.Fatalf("third start: HTTP %d %+v, want 429 slotsFull naming both active recordings", code, full)
	}
	// Another client's slots are its own.
	r4 := rec.start(t, "user2", "pw2", "s3")
	if _, err := os.Stat(filepath.Join(rec.Dir, "records2", r4.ID)); err != nil {
		t.Errorf("user2's recording is not in its own RecordingDir: %v", err)
	}
	rec.waitState(t, "user1", "user1", r1.ID, "recording", 15*time.Second)
	time.Sleep(3 * time.Second)
	rec.call(t, "POST", "/api/v1/recordings/"+r1.ID+"/stop", "user1", "user1", nil, nil)
	done := rec.waitState(t, "user1", "user1", r1.ID, "done", 30*time.Second)
	r3 := rec.start(t, "user1", "user1", "s3")

	// Visibility: user2 sees none of user1's; the admin sees all.
	var list struct {
		Recordings []recording `json:"recordings"`
	}
	rec.call(t, "GET", "/api/v1/recordings", "user2", "pw2", nil, &list)
	if len(list.Recordings) != 1 || list.Recordings[0].ID != r4.ID {
		t.Errorf("user2 lists %+v, want only %s", list.Recordings, r4.ID)
	}
	rec.call(t, "GET", "/api/v1/recordings", "admin", "recsite", nil, &list)
	if len(list.Recordings) != 4 {
		t.Errorf("admin lists %d recordings, want 4", len(list.Recordings))
	}
	if code := rec.call(t, "GET", "/api/v1/recordings/"+r1.ID, "user2", "pw2", nil, nil); code != 404 {
		t.Errorf("user2 reading user1's recording: HTTP %d, want 404", code)
	}
	var code int
	if rec.download(t, "user2", "pw2", r1.ID, "T-s1.webm", "", &code); code != 404 {
		t.Errorf("user2 downloading user1's file: HTTP %d, want 404", code)
	}

	// A file downloads in ranges; names that try to leave the folder get 404.
	if len(done.Files) == 0 {
		t.Fatalf("stopped recording has no files: %+v", done)
	}
	name := done.Files[0].Name
	whole := rec.download(t, "user1", "user1", r1.ID, name, "", &code)
	part := rec.download(t, "user1", "user1", r1.ID, name, "bytes=100-199", &code)
	if code != 206 || len(part) != 100 || string(part) != string(whole[100:200]) {
		t.Errorf("range download: HTTP %d, %d bytes, want 206 and bytes 100-199", code, len(part))
	}
	for _, bad := range []string{"..%2F..%2Fconfig.json", "..%2Frecording.json", "recording.json", "%2e%2e%2f%2e%2e%2fconfig.json", ".recording.json.tmp", "manifest.json%00"} {
		if body := rec.download(t, "user1", "user1", r1.ID, bad, "", &code); code != 404 || strings.Contains(string(body), "Credentials") {
			t.Errorf("file name %q: HTTP %d, want 404", bad, code)
		}
	}
	if body := rec.download(t, "admin", "recsite", "..%2F..", "config.json", "", &code); code != 404 || strings.Contains(string(body), "Credentials") {
		t.Errorf("recording id ../..: HTTP %d, want 404", code)
	}

	// Callbacks go only to the client's own Host.
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if code := rec.call(t, "POST", "/api/v1/recordings", "user2", "pw2", map[string]string{"room": "s1", "callbackUrl": "https://evil.example/hook"}, &e); code != 400 {
		t.Errorf("callback on another origin: HTTP %d %q, want 400", code, e.Error.Code)
	}
	// Deleting: not while it runs; then gone with its folder.
	if code := rec.call(t, "DELETE", "/api/v1/recordings/"+r2.ID, "user1", "user1", nil, nil); code != 409 {
		t.Errorf("delete of a running recording: HTTP %d, want 409", code)
	}
	if code := rec.call(t, "DELETE", "/api/v1/recordings/"+r1.ID, "user1", "user1", nil, nil); code != 204 {
		t.Errorf("delete: HTTP %d, want 204", code)
	}
	if _, err := os.Stat(filepath.Join(rec.Dir, "records", r1.ID)); !os.IsNotExist(err) {
		t.Errorf("deleted recording's folder is still there: %v", err)
	}
	for _, id := range []string{r2.ID, r3.ID} {
		rec.call(t, "POST", "/api/v1/recordings/"+id+"/stop", "user1", "user1", nil, nil)
	}
}

// Files go by the ticket's user, not only the name: two students named
// Ann (users u-1 and u-2) have a file each, Ann.webm and Ann-2.webm, each
// with its user in the manifest; when both leave and only u-2 comes back,
// she goes on in her own file. The user id reaches the recorder, never
// other peers.
func TestRecordingFilesGoByUser(t *testing.T) {
	parallel(t)
	dir := t.TempDir()
	ivf, ogg := syncClip(t, dir, 30)
	media := startMedia(t, loopbackConfig(27250, 27259, ""), "VCLASS_AUTH_SECRET="+testSecret)
	rec := startRecorder(t, "", recorderConfig(oneClient(2, false)), media)
	ctx := ctx30(t)
	ann := func(user string) client.Options {
		tk, err := auth.Mint(testSecret, auth.Claims{Room: "users", Name: "Ann", Role: auth.RoleNormal,
			RegisteredClaims: jwt.RegisteredClaims{Subject: user}}, time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return client.Options{URL: media.WS, DisplayName: "Ann", Ticket: tk}
	}
	first, _ := publishClipWith(t, ctx, ann("u-1"), "users", ivf, ogg)
	second, _ := publishClipWith(t, ctx, ann("u-2"), "users", ivf, ogg)
	watcher, err := client.Dial(ctx, client.Options{URL: media.WS, DisplayName: "Watcher"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(watcher.Close)
	peers, err := watcher.JoinRoom(ctx, "users")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if p.UserID != "" {
			t.Errorf("a student sees %s's user id %q", p.DisplayName, p.UserID)
		}
	}
	job := rec.start(t, "user1", "user1", "users")
	rec.waitState(t, "user1", "user1", job.ID, "recording", 15*time.Second)
	time.Sleep(3 * time.Second)
	// Both leave; u-2 comes back (by name alone she would take Ann.webm,
	// the first Ann's file), u-1 does not.
	first.Close()
	second.Close()
	time.Sleep(2 * time.Second)
	publishClipWith(t, ctx, ann("u-2"), "users", ivf, ogg)
	time.Sleep(4 * time.Second)
	rec.call(t, "POST", "/api/v1/recordings/"+job.ID+"/stop", "user1", "user1", nil, nil)
	done := rec.waitState(t, "user1", "user1", job.ID, "done", 30*time.Second)
	users := map[string]string{}
	for _, f := range done.Files {
		if f.Source == "camera" {
			users[f.Name] = f.UserID
		}
	}
	if len(users) != 2 || users["Ann.webm"] == "" || users["Ann-2.webm"] == "" || users["Ann.webm"] == users["Ann-2.webm"] {
		t.Fatalf("camera files and their users %v, want Ann.webm and Ann-2.webm for u-1 and u-2", users)
	}
	if len(done.Participants) != 2 {
		t.Errorf("participants %+v, want two (two users named Ann)", done.Participants)
	}
	for _, p := range done.Participants {
		if p.Name != "Ann" || len(p.Files) != 1 || users[p.Files[0]] != p.UserID {
			t.Errorf("participant %+v", p)
		}
	}
	// u-2's file goes on to the end of the recording, her absence a gap
	// in it; u-1's ends when she left.
	for _, f := range done.Files {
		end := f.Offset + f.Duration
		switch {
		case f.UserID == "u-2" && end < done.Duration-1.5:
			t.Errorf("u-2's file %s ends at %.1f s of %.1f: her coming back did not go on in it", f.Name, end, done.Duration)
		case f.UserID == "u-1" && end > done.Duration-3:
			t.Errorf("u-1's file %s ends at %.1f s of %.1f: someone else went on in it", f.Name, end, done.Duration)
		}
	}
}
