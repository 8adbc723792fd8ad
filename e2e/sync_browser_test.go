package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// flashBeepDevices makes the files a Chromium's fake camera and
// microphone play (in a loop, flashBeep): y4m and 16-bit wav.
func flashBeepDevices(t *testing.T, dir string, secs int) (y4m, wav string) {
	t.Helper()
	y4m, wav = filepath.Join(dir, "flash.y4m"), filepath.Join(dir, "beep.wav")
	flashBeep(t, secs, []string{"-pix_fmt", "yuv420p", y4m}, []string{"-c:a", "pcm_s16le", wav})
	return y4m, wav
}

// browserWithDevices starts a Chromium of its own whose fake camera and
// microphone play the files given.
func browserWithDevices(t *testing.T, y4m, wav string) context.Context {
	t.Helper()
	return browserWith(t,
		chromedp.Flag("use-file-for-fake-video-capture", y4m),
		chromedp.Flag("use-file-for-fake-audio-capture", wav))
}

// playedTracks is the expression for what a page plays of peer's camera
// and microphone, as [video, audio] tracks.
func playedTracks(peer string) string {
	return fmt.Sprintf(`(() => {
		const tile = document.querySelector('.tile[data-peer-id=%q][data-source="video:cam"]');
		return [tile.querySelector('video').srcObject.getVideoTracks()[0],
			tile.querySelector('audio[data-source="audio:mic"]').srcObject.getAudioTracks()[0]];
	})()`, peer)
}

// ownTracks is the expression for a page's own camera and microphone.
const ownTracks = `[window.vclass.local.cam, window.vclass.local.mic]`

// startTrackRecording has p record the tracks of expression tracks
// ([video, audio]) with MediaRecorder; the returned function stops it,
// writes the WebM to path and gives the wall time of its start.
func startTrackRecording(t *testing.T, p *page, tracks, path string) func() time.Time {
	t.Helper()
	if err := p.eval(fmt.Sprintf(`(() => {
		const [video, audio] = %s;
		const rec = new MediaRecorder(new MediaStream([video, audio]), { mimeType: 'video/webm;codecs=vp8,opus' });
		const chunks = [];
		rec.ondataavailable = (e) => chunks.push(e.data);
		window.playout = { rec, chunks, started: 0 };
		rec.onstart = () => { window.playout.started = Date.now(); };
		rec.start(1000);
		return true;
	})()`, tracks), nil); err != nil {
		t.Fatalf("start MediaRecorder: %v", err)
	}
	return func() time.Time {
		t.Helper()
		var out struct {
			Started int64
			Data    string
		}
		if err := p.eval(`new Promise((resolve) => {
			const { rec, chunks, started } = window.playout;
			rec.onstop = async () => {
				const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
				let s = '';
				for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
				resolve({ Started: started, Data: btoa(s) });
			};
			rec.stop();
		})`, &out); err != nil {
			t.Fatalf("stop MediaRecorder: %v", err)
		}
		data, err := base64.StdEncoding.DecodeString(out.Data)
		if err != nil || len(data) == 0 {
			t.Fatalf("MediaRecorder's file: %d bytes, %v", len(data), err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return time.UnixMilli(out.Started)
	}
}

// syncEvent is one flash and its beep in a file: the flash's wall time
// (the file's start plus its place) and video minus audio.
type syncEvent struct {
	wall   time.Time
	offset float64 // seconds
}

// syncEvents pairs each flash of the file at path, which began at start,
// with the nearest beep.
func syncEvents(t *testing.T, path string, start time.Time) []syncEvent {
	t.Helper()
	flashes, beeps := syncOnsets(t, path)
	var out []syncEvent
	for _, f := range flashes {
		best := math.Inf(1)
		for _, b := range beeps {
			if math.Abs(f-b) < math.Abs(best) {
				best = f - b
			}
		}
		if math.Abs(best) < 0.4 {
			out = append(out, syncEvent{start.Add(time.Duration(f * float64(time.Second))), best})
		}
	}
	if len(out) < 10 {
		t.Fatalf("%s: only %d flash/beep pairs (flashes %v, beeps %v)", path, len(out), flashes, beeps)
	}
	return out
}

// compareSync holds the events of a recording against another's (the
// playout's), the same flashes matched by wall time: the recording's
// video-minus-audio minus the other's, its median (seconds), its slope
// over the minutes (seconds a minute, see robustLine) and per flash.
func compareSync(t *testing.T, what string, rec, play []syncEvent) (median, slope float64, diffs []float64) {
	t.Helper()
	var xs, ds []float64
	var line strings.Builder
	for _, r := range rec {
		for _, p := range play {
			if d := r.wall.Sub(p.wall); d > -400*time.Millisecond && d < 400*time.Millisecond {
				x, diff := r.wall.Sub(rec[0].wall).Minutes(), r.offset-p.offset
				xs, ds = append(xs, x), append(ds, diff)
				fmt.Fprintf(&line, " %.1f", diff*1000)
				break
			}
		}
	}
	if len(ds) < 10 {
		t.Fatalf("%s: only %d flashes matched the playout's", what, len(ds))
	}
	median, slope = robustLine(xs, ds)
	t.Logf("%s, per flash (ms):%s; median %.1f ms, drift %.1f ms/min", what, line.String(), median*1000, slope*1000)
	return median, slope, ds
}

// inStep holds a recording to the playout, within 20 ms, and to the
// publisher's own recording of her devices, drifting at most 10 ms a
// minute. (Not the drift against the playout: a browser's playout moves
// by itself in steps of 10-15 ms, within its synchronization's dead band,
// which in a run of 40 s looks like 20 ms a minute.)
func inStep(t *testing.T, errorf func(string, ...any), what string, rec, play, own []syncEvent) (againstOwn []float64) {
	t.Helper()
	median, slope, _ := compareSync(t, what+" minus the playout", rec, play)
	if math.Abs(median) > 0.020 {
		errorf("%s: audio and video %.1f ms apart from the playout's, want within 20 ms", what, median*1000)
	}
	_, drift, againstOwn := compareSync(t, what+" minus the publisher's own", rec, own)
	if math.Abs(drift) > 0.010 {
		errorf("%s: drifts %.1f ms a minute from the publisher's own recording, want within 10 (%.1f from the playout)", what, drift*1000, slope*1000)
	}
	return againstOwn
}

// byMinute holds a long recording to the playout minute by minute: each
// whole minute's median within 20 ms (a minute with few flashes matched,
// where a fake device stalled, is only reported).
func byMinute(t *testing.T, errorf func(string, ...any), what string, rec, play []syncEvent) {
	t.Helper()
	var line strings.Builder
	byMin := make([][]syncEvent, int(rec[len(rec)-1].wall.Sub(rec[0].wall).Minutes())) // whole minutes
	for _, r := range rec {
		if m := int(r.wall.Sub(rec[0].wall).Minutes()); m < len(byMin) {
			byMin[m] = append(byMin[m], r)
		}
	}
	for from, minute := range byMin {
		if len(minute) < 30 {
			fmt.Fprintf(&line, " (%d flashes)", len(minute))
			continue
		}
		median, _, _ := compareSync(t, fmt.Sprintf("%s minus the playout, minute %d", what, from+1), minute, play)
		fmt.Fprintf(&line, " %.1f", median*1000)
		if math.Abs(median) > 0.020 {
			errorf("%s: minute %d, audio and video %.1f ms apart from the playout's, want within 20 ms", what, from+1, median*1000)
		}
	}
	t.Logf("%s minus the playout, median by minute (ms):%s", what, line.String())
}

// robustLine is the median of ys and its slope: the medians of the last
// third against the first's, over the minutes between their middles.
// A passing glitch (a fake device stalling for a moment on a busy
// machine: the recording takes some seconds to come back where a browser
// goes at once) moves neither, a lasting offset or drift does.
func robustLine(xs, ys []float64) (median, slope float64) {
	third := len(ys) / 3
	first, last := medianOf(ys[:third]), medianOf(ys[len(ys)-third:])
	if dx := medianOf(xs[len(xs)-third:]) - medianOf(xs[:third]); dx > 0 {
		slope = (last - first) / dx
	}
	return medianOf(ys), slope
}

func medianOf(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// A Chromium publishes a camera that flashes and a microphone that beeps
// at every whole second; a second Chromium in the class records what it
// plays of them (MediaRecorder on the remote tracks) while the recorder
// records the class. The participant's file and class.mp4 have each
// flash as far from its beep as the playout has, within 20 ms on
// average, and drift at most 10 ms a minute. (Not against the files'
// nominal timing: Chromium's fake devices drift apart by themselves.)
//
// VCLASS_SYNC_RECORD sets how long it records (40 s unless set; a Go
// duration, such as 10m): a recording of some minutes is also held to the
// playout minute by minute.
func TestRecordingInStepWithPlayout(t *testing.T) {
	length := 40 * time.Second
	if v := os.Getenv("VCLASS_SYNC_RECORD"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 30*time.Second {
			t.Fatalf("VCLASS_SYNC_RECORD=%q: want a duration of at least 30s", v)
		}
		length = d
	}
	dir := t.TempDir()
	y4m, wav := flashBeepDevices(t, dir, 10)
	media := startMedia(t, loopbackConfig(27260, 27269, ""), "VCLASS_AUTH_SECRET="+testSecret)
	rec := startRecorder(t, "", recorderConfig(oneClient(2, true)), media)
	ann := openPageIn(t, browserWithDevices(t, y4m, wav), media.URL+"/?room=insync&name=Ann&autojoin=1", "Ann")
	annID := inRoom(t, ann)
	bob := openPage(t, media.URL+"/?room=insync&name=Bob&autojoin=1&cam=0&mic=0&adaptive=0", "Bob")
	waitFor(t, 20*time.Second, "Bob playing Ann's camera and microphone", func() bool {
		_, energy := bob.stats().inboundFrom(annID, "audio:mic")
		return cameraOf(bob, annID).frames > 30 && energy > 0
	})

	// Bob's synchronization settles (it moves the video's delay in steps
	// over the first seconds): a recording is held to what he plays then.
	time.Sleep(20 * time.Second)
	for attempt := 1; ; attempt++ {
		var problems []string
		errorf := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
		own, played := recordInStep(t, errorf, rec, ann, bob, annID, filepath.Join(dir, strconv.Itoa(attempt)), length)
		if len(problems) == 0 {
			return
		}
		if attempt == 1 && (own > 0.015 || played > 0.020) {
			// A fake device stalled on a busy machine: Ann.webm stepped
			// against Ann's own recording, or Bob's playout against it.
			// Where the playout and the recording come back after such a
			// step differs by tens of milliseconds, a run later, so the
			// measurement is taken once more; a recording out of step
			// fails both.
			t.Logf("Ann.webm moved up to %.1f ms against Ann's own recording, Bob's playout %.1f ms (a fake device stalled); not judged on this recording: %s; recording again",
				own*1000, played*1000, strings.Join(problems, "; "))
			continue
		}
		for _, p := range problems {
			t.Error(p)
		}
		return
	}
}

// recordInStep records the class for length while Bob records what he
// plays of Ann and Ann what she captures, and holds Ann.webm and
// class.mp4 to them (see TestRecordingInStepWithPlayout). It gives how
// far, at most, one flash of Ann.webm is from its median against Ann's
// own recording, and one of Ann's own recording against Bob's playout
// (seconds): Ann.webm keeps within 3 ms of Ann's own when nothing stalls.
func recordInStep(t *testing.T, errorf func(string, ...any), rec *recorderServer, ann, bob *page, annID, dir string, length time.Duration) (ownJitter, playJitter float64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	job := rec.start(t, "user1", "user1", "insync")
	rec.waitState(t, "user1", "user1", job.ID, "recording", 15*time.Second)
	playout := filepath.Join(dir, "playout.webm")
	stop := startTrackRecording(t, bob, playedTracks(annID), playout)
	source := filepath.Join(dir, "source.webm")
	stopSource := startTrackRecording(t, ann, ownTracks, source)
	time.Sleep(length)
	played, sourced := stop(), stopSource()
	rec.call(t, "POST", "/api/v1/recordings/"+job.ID+"/stop", "user1", "user1", nil, nil)
	done := rec.waitState(t, "user1", "user1", job.ID, "done", 90*time.Second+length) // class.mp4 takes a while
	if done.ComposeError != "" || done.StartedAt == nil {
		t.Fatalf("compose error %q, started at %v", done.ComposeError, done.StartedAt)
	}
	var offset float64 = -1
	for _, f := range done.Files {
		if f.Name == "Ann.webm" {
			offset = f.Offset
		}
	}
	if offset < 0 {
		t.Fatalf("files %+v, want Ann.webm", done.Files)
	}
	began := *done.StartedAt
	jobDir := filepath.Join(rec.Dir, "records", job.ID)
	play, own := syncEvents(t, playout, played), syncEvents(t, source, sourced)
	_, _, ownPlay := compareSync(t, "Ann's own minus the playout", own, play)
	webm := syncEvents(t, filepath.Join(jobDir, "Ann.webm"), began.Add(time.Duration(offset*float64(time.Second))))
	ownJitter = spread(inStep(t, errorf, "Ann.webm", webm, play, own))
	playJitter = spread(ownPlay)
	if length >= 3*time.Minute {
		byMinute(t, errorf, "Ann.webm", webm, play)
	}
	// class.mp4 shows each camera at 30 frames a second, the frame
	// nearest in time: a flash moves by up to half a frame from where
	// Ann.webm has it, so it cannot drift from Ann.webm. Now and then one
	// lands a whole canvas frame off (seen once in a CI run: -34.9 ms at
	// one flash of 38, its neighbours within 3 ms), so a few may be off
	// by a frame, none by more.
	mp4 := syncEvents(t, filepath.Join(jobDir, "class.mp4"), began)
	if median, _, _ := compareSync(t, "class.mp4 minus the playout", mp4, play); math.Abs(median) > 0.020 {
		errorf("class.mp4: audio and video %.1f ms apart from the playout's, want within 20 ms", median*1000)
	}
	if length >= 3*time.Minute {
		byMinute(t, errorf, "class.mp4", mp4, play)
	}
	_, _, diffs := compareSync(t, "class.mp4 minus Ann.webm", mp4, webm)
	const frame = 1.0 / 30
	framesOff := 0
	for i, d := range diffs {
		switch {
		case math.Abs(d) > frame+0.005:
			errorf("class.mp4: flash %d is %.1f ms from where Ann.webm has it, want within a frame (33 ms)", i, d*1000)
		case math.Abs(d) > frame/2+0.005:
			framesOff++
		}
	}
	if framesOff > len(diffs)/10 {
		errorf("class.mp4: %d flashes of %d more than half a frame (17 ms) from where Ann.webm has them, want at most one in ten", framesOff, len(diffs))
	}
	return ownJitter, playJitter
}

// spread is how far the farthest of ds is from their median.
func spread(ds []float64) float64 {
	mid, far := medianOf(ds), 0.0
	for _, d := range ds {
		far = max(far, math.Abs(d-mid))
	}
	return far
}
