package mkv

import (
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/pion/webrtc/v4/pkg/media/ivfreader"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"

	"github.com/vclass/vclass/internal/picsize"
)

// tool finds a program; outside CI a missing one skips, in CI it fails.
func tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (deploy/scripts/test.sh installs it)", name)
	}
	t.Skipf("%s is not installed; run deploy/scripts/test.sh to install it", name)
	return ""
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(tool(t, name), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

type frame struct {
	ms   int64
	key  bool
	data []byte
}

// clip makes 4 s of VP8 (30 fps, a keyframe a second) and Opus (20 ms
// packets) with ffmpeg and returns their frames.
func clip(t *testing.T) (video, audio []frame, w, h int) {
	dir := t.TempDir()
	ivf, ogg := filepath.Join(dir, "v.ivf"), filepath.Join(dir, "a.ogg")
	run(t, "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "4", "-c:v", "libvpx", "-g", "30", "-b:v", "300k", ivf)
	run(t, "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "4", "-c:a", "libopus", "-page_duration", "20000", ogg)
	f, _ := os.Open(ivf)
	defer f.Close()
	r, _, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		data, _, err := r.ParseNextFrame()
		if err != nil {
			break
		}
		video = append(video, frame{ms: int64(i) * 1000 / 30, key: data[0]&1 == 0, data: data})
	}
	w, h, ok := picsize.VP8(video[0].data)
	if !ok {
		t.Fatal("the first VP8 frame has no size")
	}
	g, _ := os.Open(ogg)
	defer g.Close()
	or, _, err := oggreader.NewWith(g)
	if err != nil {
		t.Fatal(err)
	}
	last := uint64(0)
	for {
		page, hdr, err := or.ParseNextPage()
		if err != nil {
			break
		}
		if hdr.GranulePosition <= last {
			continue
		}
		audio = append(audio, frame{ms: int64(last) / 48, key: true, data: page})
		last = hdr.GranulePosition
	}
	return video, audio, w, h
}

// interleave writes the frames in time order.
func interleave(t *testing.T, w *Writer, vt, at int, video, audio []frame, until int64) {
	t.Helper()
	i, j := 0, 0
	for {
		vNext := i < len(video) && video[i].ms < until
		aNext := j < len(audio) && audio[j].ms < until
		if !vNext && !aNext {
			return
		}
		var err error
		if vNext && (!aNext || video[i].ms <= audio[j].ms) {
			err = w.WriteFrame(vt, video[i].ms, video[i].key, video[i].data)
			i++
		} else {
			err = w.WriteFrame(at, audio[j].ms, true, audio[j].data)
			w.SetEnd(audio[j].ms + 20)
			j++
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

type probe struct {
	duration float64
	codecs   string
	frames   map[string]int
}

func ffprobe(t *testing.T, path string) probe {
	t.Helper()
	p := probe{frames: map[string]int{}}
	d := run(t, "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path)
	p.duration, _ = strconv.ParseFloat(d, 64)
	out := run(t, "ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0", path)
	var codecs []string
	for _, line := range strings.Split(out, "\n") {
		name, n, _ := strings.Cut(line, ",")
		codecs = append(codecs, name)
		p.frames[name], _ = strconv.Atoi(n)
	}
	p.codecs = strings.Join(codecs, ",")
	return p
}

// A closed file: both codecs, every frame, the real duration, cues that
// ffmpeg can seek with.
func TestWriteAndClose(t *testing.T) {
	video, audio, w, h := clip(t)
	path := filepath.Join(t.TempDir(), "a.webm")
	wr, err := Create(path, Track{Type: Video, CodecID: "V_VP8", Width: w, Height: h}, OpusTrack("mic", 2))
	if err != nil {
		t.Fatal(err)
	}
	interleave(t, wr, 1, 2, video, audio, math.MaxInt64)
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	p := ffprobe(t, path)
	if p.codecs != "vp8,opus" {
		t.Errorf("codecs %q, want vp8,opus", p.codecs)
	}
	if p.frames["vp8"] != len(video) || p.frames["opus"] < len(audio)-1 {
		t.Errorf("frames %v, want %d vp8 and %d opus", p.frames, len(video), len(audio))
	}
	if math.Abs(p.duration-4) > 0.1 {
		t.Errorf("duration %.3f s, want 4", p.duration)
	}
	if info, err := Inspect(path); err != nil || math.Abs(info.Duration.Seconds()-4) > 0.1 || !info.Finished || !info.Cues || info.Clusters != 4 {
		t.Errorf("Inspect = %+v, %v; want 4 s, finished, with cues, 4 clusters", info, err)
	}
	if dt := run(t, "ffprobe", "-v", "error", "-show_entries", "format_tags=", "-show_entries", "format=format_name", "-of", "csv=p=0", path); !strings.Contains(dt, "webm") {
		t.Errorf("format %q, want webm", dt)
	}
	// Seeking goes through the cues: 2.5 s in, the first frame decoded is
	// the keyframe at 2 s.
	out := run(t, "ffprobe", "-v", "error", "-read_intervals", "2.5%+0.5", "-select_streams", "v", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", path)
	if first, _, _ := strings.Cut(out, "\n"); !strings.HasPrefix(first, "2.0") || !strings.Contains(first, "K") {
		t.Errorf("seek to 2.5 s starts at packet %q, want the keyframe at 2.0", first)
	}
}

// A file whose writer died after a Flush: ffprobe reads it and ffmpeg
// decodes everything flushed; the header's duration is that of the flush.
func TestUnfinishedFileIsPlayable(t *testing.T) {
	video, audio, w, h := clip(t)
	path := filepath.Join(t.TempDir(), "a.webm")
	wr, err := Create(path, Track{Type: Video, CodecID: "V_VP8", Width: w, Height: h}, OpusTrack("mic", 2))
	if err != nil {
		t.Fatal(err)
	}
	interleave(t, wr, 1, 2, video, audio, 3000)
	if err := wr.Flush(); err != nil {
		t.Fatal(err)
	}
	wr.Abandon() // as a kill -9 leaves it: no cues, unknown sizes
	p := ffprobe(t, path)
	if p.codecs != "vp8,opus" || p.frames["vp8"] != 90 || p.frames["opus"] < 148 {
		t.Errorf("unfinished file: codecs %q frames %v, want vp8,opus with 90 and 150", p.codecs, p.frames)
	}
	if math.Abs(p.duration-3) > 0.1 {
		t.Errorf("duration %.3f, want 3", p.duration)
	}
	if info, err := Inspect(path); err != nil || math.Abs(info.Duration.Seconds()-3) > 0.1 || info.Finished || info.Cues || info.Clusters != 3 {
		t.Errorf("Inspect = %+v, %v; want 3 s, unfinished, no cues, 3 clusters", info, err)
	}
	out := run(t, "ffmpeg", "-v", "error", "-i", path, "-f", "null", "-")
	if out != "" {
		t.Errorf("ffmpeg decoding the unfinished file complained:\n%s", out)
	}
}

// Tracks added as they appear: audio first, the camera later; then a codec
// WebM does not take turns the file into Matroska.
func TestTracksAddedLater(t *testing.T) {
	video, audio, w, h := clip(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "a.webm")
	wr, err := Create(path, OpusTrack("mic", 2))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range audio[:50] {
		if err := wr.WriteFrame(1, a.ms, true, a.data); err != nil {
			t.Fatal(err)
		}
	}
	vt, err := wr.AddTrack(Track{Type: Video, CodecID: "V_VP8", Width: w, Height: h})
	if err != nil || vt != 2 {
		t.Fatalf("AddTrack = %d, %v", vt, err)
	}
	var late []frame
	for _, v := range video {
		if v.ms >= 1000 {
			late = append(late, v)
		}
	}
	interleave(t, wr, vt, 1, late, audio[50:], math.MaxInt64)
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	p := ffprobe(t, path)
	if p.codecs != "opus,vp8" || p.frames["vp8"] != len(late) {
		t.Errorf("codecs %q frames %v, want opus,vp8 with %d video frames", p.codecs, p.frames, len(late))
	}

	// G.711 goes in Matroska.
	mk := filepath.Join(dir, "b.webm")
	wr, err = Create(mk, OpusTrack("mic", 2))
	if err != nil {
		t.Fatal(err)
	}
	if !wr.WebM() {
		t.Fatal("an Opus-only file is not WebM")
	}
	at, err := wr.AddTrack(G711Track("phone", true, 8000, 1))
	if err != nil {
		t.Fatal(err)
	}
	if wr.WebM() {
		t.Fatal("a file with PCMA still says WebM")
	}
	if err := wr.Rename(filepath.Join(dir, "b.mkv")); err != nil {
		t.Fatal(err)
	}
	silence := make([]byte, 160)
	for i := range silence {
		silence[i] = 0xd5 // A-law zero
	}
	for i := range 100 {
		if err := wr.WriteFrame(at, int64(i)*20, true, silence); err != nil {
			t.Fatal(err)
		}
	}
	wr.SetEnd(2000)
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	p = ffprobe(t, filepath.Join(dir, "b.mkv"))
	if p.codecs != "opus,pcm_alaw" || math.Abs(p.duration-2) > 0.05 {
		t.Errorf("matroska file: codecs %q duration %.3f, want opus,pcm_alaw and 2", p.codecs, p.duration)
	}
	if f := run(t, "ffprobe", "-v", "error", "-show_entries", "format=format_name", "-of", "csv=p=0", filepath.Join(dir, "b.mkv")); !strings.Contains(f, "matroska") {
		t.Errorf("format %q", f)
	}
}

// A write error sticks: later writes report it and Close returns it.
func TestWriteErrorSticks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.webm")
	wr, err := Create(path, OpusTrack("mic", 2))
	if err != nil {
		t.Fatal(err)
	}
	wr.f.Close() // the disk goes away
	_ = wr.WriteFrame(1, 0, true, make([]byte, 100))
	if err := wr.Flush(); err == nil {
		t.Fatal("Flush on a closed file succeeded")
	}
	if err := wr.WriteFrame(1, 20, true, []byte{1}); err == nil || errors.Is(err, io.EOF) {
		t.Errorf("write after a failure: %v", err)
	}
	if err := wr.Close(); err == nil {
		t.Error("Close after a failure returned nil")
	}
}

// Picture sizes read from real encoders' headers.
func TestCodecSizes(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ profile, size string }{{"baseline", "1280x720"}, {"high", "638x358"}} {
		path := filepath.Join(dir, c.profile+".h264")
		run(t, "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size="+c.size+":rate=30", "-t", "0.1", "-pix_fmt", "yuv420p",
			"-c:v", "libx264", "-profile:v", c.profile, "-f", "h264", path)
		data, _ := os.ReadFile(path)
		var sps []byte
		for _, nal := range strings.Split(string(data), "\x00\x00\x01") {
			if len(nal) > 0 && nal[0]&0x1f == 7 {
				sps = []byte(strings.TrimRight(nal, "\x00"))
			}
		}
		w, h, ok := picsize.H264(sps)
		if got := strconv.Itoa(w) + "x" + strconv.Itoa(h); !ok || got != c.size {
			t.Errorf("%s: H264 = %s %v, want %s", c.profile, got, ok, c.size)
		}
	}
	vp9 := filepath.Join(dir, "v.ivf")
	run(t, "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=642x362:rate=30", "-t", "0.1", "-c:v", "libvpx-vp9", vp9)
	f, _ := os.Open(vp9)
	defer f.Close()
	r, _, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	key, _, _ := r.ParseNextFrame()
	if w, h, ok := picsize.VP9(key); !ok || w != 642 || h != 362 {
		t.Errorf("VP9 = %d x %d %v, want 642 x 362", w, h, ok)
	}
	if _, _, ok := picsize.H264([]byte{0x68, 1, 2, 3}); ok {
		t.Error("a PPS read as an SPS")
	}
	if _, _, ok := picsize.VP8([]byte{1, 2, 3}); ok {
		t.Error("garbage read as a VP8 keyframe")
	}
}

// Frames that come at or before a track's last time (a sender's clock
// stepping back) get strictly increasing times, which decoders need.
func TestTrackTimesStrictlyIncrease(t *testing.T) {
	video, _, w, h := clip(t)
	path := filepath.Join(t.TempDir(), "a.webm")
	wr, err := Create(path, Track{Type: Video, CodecID: "V_VP8", Width: w, Height: h})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range video[:60] {
		ms := v.ms
		if i >= 30 && i < 33 {
			ms = video[29].ms // three frames stuck at one time
		}
		if err := wr.WriteFrame(1, ms, v.key, v.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	var last float64 = -1
	for _, line := range strings.Fields(run(t, "ffprobe", "-v", "error", "-show_entries", "packet=pts_time", "-of", "csv=p=0", path)) {
		v, _ := strconv.ParseFloat(line, 64)
		if v <= last {
			t.Fatalf("packet at %v after %v: not increasing", v, last)
		}
		last = v
	}
}

// A full disk fails the write, and the file stays whole: it ends where the
// last good flush left it, and every frame in it decodes. The writer runs
// in its own mount namespace on a small tmpfs.
func TestDiskFullKeepsFileWhole(t *testing.T) {
	if dir := os.Getenv("MKV_FULL_DIR"); dir != "" {
		w, err := Create(filepath.Join(dir, "a.webm"), OpusTrack("mic", 2))
		if err != nil {
			t.Fatal(err)
		}
		frame := make([]byte, 300)
		var werr error
		for i := 0; i < 100000 && werr == nil; i++ {
			if werr = w.WriteFrame(1, int64(i*20), true, frame); werr == nil && i%50 == 0 {
				werr = w.Flush()
			}
		}
		w.Abandon()
		if !errors.Is(werr, syscall.ENOSPC) {
			t.Fatalf("writing until the disk is full: %v, want ENOSPC", werr)
		}
		data, _ := os.ReadFile(filepath.Join(dir, "a.webm"))
		if err := os.WriteFile(os.Getenv("MKV_FULL_OUT"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	unshare, err := exec.LookPath("unshare")
	if err == nil {
		err = exec.Command(unshare, "-rm", "true").Run()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("unshare -rm is needed: %v", err)
		}
		t.Skipf("unshare -rm does not work here: %v", err)
	}
	mnt, out := t.TempDir(), filepath.Join(t.TempDir(), "kept.webm")
	cmd := exec.Command(unshare, "-rm", "sh", "-c", `mount -t tmpfs -o size=160k none "$MKV_FULL_DIR" && exec "$0" -test.run '^TestDiskFullKeepsFileWhole$'`, os.Args[0])
	cmd.Env = append(os.Environ(), "MKV_FULL_DIR="+mnt, "MKV_FULL_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the writer on a full disk: %v\n%s", err, b)
	}
	n := run(t, "ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", out)
	if frames, err := strconv.Atoi(n); err != nil || frames < 400 {
		t.Errorf("the kept file: ffprobe says %q, want only a frame count (over 400) and no complaint", n)
	}
}

// A process killed between flushes leaves the file as of its last flush:
// a cluster that ended after it must not claim blocks that never reached
// the file.
func TestKilledBetweenFlushes(t *testing.T) {
	video, audio, w, h := clip(t)
	path := filepath.Join(t.TempDir(), "a.webm")
	wr, err := Create(path, Track{Type: Video, CodecID: "V_VP8", Width: w, Height: h}, OpusTrack("mic", 2))
	if err != nil {
		t.Fatal(err)
	}
	interleave(t, wr, 1, 2, video, audio, 900) // within the first cluster
	if err := wr.Flush(); err != nil {
		t.Fatal(err)
	}
	interleave(t, wr, 1, 2, video[27:], audio[45:], 2500) // the first cluster ends, unflushed
	wr.f.Close()                                          // killed: the buffer is lost
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil || strings.Contains(string(out), "prematurely") || strings.Contains(string(out), "[") {
		t.Errorf("file killed between flushes: %v\n%s", err, out)
	}
}
