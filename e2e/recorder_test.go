package e2e

import (
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/client"
)

// syncClip makes a clip of secs seconds with ffmpeg: black video with a
// white flash and silence with a 1 kHz beep, both at every whole second
// and lasting 100 ms; VP8 in IVF and Opus in Ogg (20 ms packets).
func syncClip(t *testing.T, dir string, secs int) (ivf, ogg string) {
	t.Helper()
	ffmpeg := ffmpegPath(t)
	ivf, ogg = filepath.Join(dir, "sync.ivf"), filepath.Join(dir, "sync.ogg")
	d := strconv.Itoa(secs)
	for _, args := range [][]string{
		{"-f", "lavfi", "-i", "color=c=black:s=320x240:r=30:d=" + d,
			"-vf", `drawbox=enable='lt(mod(t\,1)\,0.1)':x=0:y=0:w=iw:h=ih:color=white:t=fill`,
			"-c:v", "libvpx", "-g", "30", "-b:v", "400k", "-deadline", "realtime", "-cpu-used", "8", ivf},
		{"-f", "lavfi", "-i", `aevalsrc='if(lt(mod(t\,1)\,0.1)\,0.5*sin(2*PI*1000*t)\,0)':s=48000:d=` + d,
			"-c:a", "libopus", "-page_duration", "20000", ogg},
	} {
		if out, err := exec.Command(ffmpeg, append([]string{"-v", "error", "-y"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	return ivf, ogg
}

// publishClip joins room as name and sends the clip with real RTP timing,
// audio and video started together.
func publishClip(t *testing.T, ctx context.Context, wsURL, room, name, ivf, ogg string) *client.Client {
	t.Helper()
	c, err := client.Dial(ctx, client.Options{URL: wsURL, DisplayName: name, Sources: []string{"audio:mic", "video:cam"}})
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
	if _, err := c.Publish(ctx, client.LocalTrack{Track: video, Source: "video:cam"}, client.LocalTrack{Track: audio, Source: "audio:mic"}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = client.Play(ctx, video, videoSrc) }()
	go func() { _ = client.Play(ctx, audio, audioSrc) }()
	return c
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

// avOffsets pairs each flash with the nearest beep and returns video time
// minus audio time per pair, in time order.
func avOffsets(t testing.TB, path string) []float64 {
	t.Helper()
	flashes, beeps := flashOnsets(t, path), beepOnsets(t, path)
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

func checkSync(t *testing.T, what string, diffs []float64) {
	t.Helper()
	ms := make([]string, len(diffs))
	for i, d := range diffs {
		ms[i] = strconv.FormatFloat(d*1000, 'f', 1, 64)
	}
	t.Logf("%s: video minus audio per flash (ms): %s", what, strings.Join(ms, " "))
	for i, d := range diffs {
		if (i < 3 || i >= len(diffs)-3) && math.Abs(d) > 0.040 {
			t.Errorf("%s: flash %d is %.1f ms off its beep, want within 40 ms", what, i, d*1000)
		}
	}
}

// A Go client sends a clip with a flash and a beep every second; the
// recording of 20 s keeps them together at the start and at the end, and
// lasts as long as the wall clock says; the same for class.mp4.
func TestRecordingKeepsAudioAndVideoInSync(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ivf, ogg := syncClip(t, dir, 40)
	media := startMedia(t, loopbackConfig(39000, 39019, ""), "VCLASS_AUTH_SECRET="+testSecret)
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
	checkSync(t, "Ann.webm", avOffsets(t, ann))

	mp4 := filepath.Join(jobDir, "class.mp4")
	if cd := fileDuration(t, mp4); math.Abs(cd-wall) > 0.5 {
		t.Errorf("class.mp4 lasts %.3f s, want the wall time %.3f within 0.5 s", cd, wall)
	}
	if codecs := ffprobeValue(t, "-show_entries", "stream=codec_name", "-of", "csv=p=0", mp4); codecs != "h264\naac" {
		t.Errorf("class.mp4 codecs %q, want h264 and aac", codecs)
	}
	checkSync(t, "class.mp4", avOffsets(t, mp4))
}
