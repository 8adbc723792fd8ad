package mkv

import (
	"bytes"
	"fmt"
	"hash/adler32"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzTracks are the tracks FuzzWriter's files may have.
var fuzzTracks = []Track{
	{Type: Video, CodecID: "V_VP8", Width: 320, Height: 240},
	{Type: Video, CodecID: "V_VP9", Width: 640, Height: 360},
	OpusTrack("mic", 2),
	G711Track("phone", true, 8000, 1),
	{Type: Video, CodecID: "V_MPEG4/ISO/AVC", Name: "cam", CodecPrivate: []byte{1, 0x42, 0xc0, 0x1f, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1f, 1, 0, 1, 0x68}},
	{Type: Video, CodecID: "V_AV1", CodecPrivate: []byte{0x81, 0x05, 0x0c, 0, 0x0a, 2, 0x18, 0x40}},
	G711Track("phone", false, 8000, 2),
}

// Operations of FuzzWriter's script: a byte (modulo wopCount), then
// their operands.
const (
	wopFrame    = iota // track, flags, time, size: WriteFrame
	wopFlush           // Flush
	wopAddTrack        // which: AddTrack
	wopSetEnd          // ms: SetEnd, that far after the last time asked
	wopBig             // track, ms: a frame of 70,000 bytes
	wopCount
)

// Time flags of wopFrame: how far from the last time asked.
const (
	wtSame = iota // the same again
	wtStep        // a byte of milliseconds later
	wtBack        // a byte of milliseconds earlier
	wtJump        // a signed 32-bit step
	wtCount
)

// writtenFrame is a frame FuzzWriter wrote and what the file should say of it.
type writtenFrame struct {
	track int
	asked int64 // the time asked for
	key   bool  // ffprobe's flag: a video keyframe, or audio
	size  int
	hash  uint32
	end   int64 // the file's size once it was written
}

// FuzzWriter writes files of any frames: tracks of every codec the
// recorder writes, added at the start or along the way until the header is
// full, frames of 1 byte to 70,000, keyframes or not, at times that stand,
// step, go back or leap (further than a cluster's 16-bit times span),
// flushes anywhere; then it closes the file, or leaves it as a killed
// process would. ffprobe (not asked to decode: the frames are a codec's
// header and a pattern) must read, without a complaint, every packet that
// reached the file, in the order written, each on its track, with its
// bytes, its keyframe flag, and a time that:
//   - is never earlier than asked for (or than 0), and is the time asked
//     for when that is after every frame written before;
//   - is not earlier than any frame before it in the file, and later than
//     the frame before it on its track.
//
// A file left with no frame at all is no exception. Inspect must find the
// file finished when closed, with cues when a frame made one, and the
// duration of the last Flush or Close.
func FuzzWriter(f *testing.F) {
	ffprobe := tool(f, "ffprobe")
	f.Add(byte(0x03), []byte{wopFrame, 0, 0x10 | wtStep, 0, 20, wopFrame, 1, wtStep, 20, 10, wopFrame, 0, wtStep, 13, 30, wopFlush})
	f.Add(byte(0x81), []byte{wopFrame, 0, 0x10 | wtJump, 0, 0, 0x80, 0, 5, wopFrame, 0, wtJump, 0xff, 0xff, 0xff, 0, 5, wopFrame, 0, 0 /* wtSame */, 0})
	f.Add(byte(0x04), []byte{wopFrame, 0, wtStep, 20, 100, wopFlush, wopAddTrack, 0, wopFrame, 1, 0x10 | wtStep, 20, 200, wopSetEnd, 40,
		wopFrame, 0, wtBack, 200, 1, wopBig, 1, 10, wopFlush})
	f.Add(byte(0x90), []byte{wopFrame, 0, 0x10 | wtJump, 0, 1, 0, 0, 9, wopFrame, 0, wtJump, 0, 0, 0xff, 0xff, 3, wopFlush, wopFrame, 0, wtStep, 1, 0})
	f.Add(byte(0x20), []byte{wopAddTrack, 4, wopAddTrack, 5, wopAddTrack, 6, wopFrame, 2, 0x10 | wtStep, 0, 1, wopFrame, 3, 0x10, 2})
	// Killed after a flush, with frames after it lost.
	f.Add(byte(0x2b), []byte{wopFrame, 0, 0x10 | wtStep, 0, 30, wopFrame, 2, wtStep, 20, 40, wopSetEnd, 20, wopFlush,
		wopFrame, 1, wtStep, 20, 50, wopSetEnd, 100})
	// Tracks until the header has no room for another.
	full := []byte{wopFrame, 0, 0x10, 10}
	for range 80 {
		full = append(full, wopAddTrack, 4)
	}
	f.Add(byte(0x00), append(full, wopFrame, 60, 0x10|wtStep, 5, 5))
	f.Fuzz(func(t *testing.T, head byte, ops []byte) {
		if len(ops) > 512 {
			return // each frame is run through ffprobe: keep files small
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "a.mkv")
		// One to three tracks to begin with: the recorder makes no file
		// before a track has a frame (ffprobe finds nothing in one without).
		tracks := []Track{fuzzTracks[int(head>>4)%len(fuzzTracks)]}
		for i := range 2 {
			if head&(1<<i) != 0 {
				tracks = append(tracks, fuzzTracks[(int(head>>4)+i+1)%len(fuzzTracks)])
			}
		}
		w, err := Create(path, tracks...)
		if err != nil {
			t.Fatal(err)
		}
		checkWritten(t, ffprobe, path, writeScript(t, w, ops, head&0x08 != 0))
	})
}

// fuzzFrame makes frame n of a codec, size bytes or near: a header that
// ffprobe's parsers take (a VP8 or VP9 frame's, an Opus packet's TOC
// byte), then a pattern of n.
func fuzzFrame(codecID string, key bool, size, n int) []byte {
	var b []byte
	switch codecID {
	case "V_VP8":
		if key {
			b = []byte{0x10, 0, 0, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00} // shown, 320x240
		} else {
			b = []byte{0x11, 0, 0}
		}
	case "V_VP9":
		if key {
			b = []byte{0x82, 0x49, 0x83, 0x42, 0x00} // profile 0, shown, sync code
		} else {
			b = []byte{0x86, 0x00}
		}
	case "A_OPUS":
		b = []byte{0xfc} // CELT, 20 ms, one frame
		size = min(size, 1276)
	}
	for len(b) < max(size, 1) {
		b = append(b, byte(n*31+len(b)*7)&0x3f) // never a VP9 superframe marker
	}
	return b
}

// writeScript plays a FuzzWriter script on w, then closes the file (or,
// when abandon, leaves it as a killed process would), and returns what it
// wrote and what the file should say: its duration, whether it has cues.
func writeScript(t *testing.T, w *Writer, ops []byte, abandon bool) written {
	var out written
	types := make([]TrackType, 0, w.Tracks())
	for _, tr := range w.tracks {
		types = append(types, tr.Type)
	}
	s := &wscript{b: ops}
	asked, endAsked := int64(0), int64(0)
	flushedFrames, flushedEnd := 0, int64(0)
	write := func(track int, key bool, size int) {
		data := fuzzFrame(w.tracks[track-1].CodecID, key, size, len(out.frames))
		if err := w.WriteFrame(track, asked, key, data); err != nil {
			t.Fatalf("frame %d: %v", len(out.frames), err)
		}
		video := types[track-1] == Video
		out.cues = out.cues || (video && key) || !slices.Contains(types, Video)
		out.frames = append(out.frames, writtenFrame{track: track, asked: asked, key: key || !video,
			size: len(data), hash: adler32.Checksum(data), end: w.Size()})
	}
	for len(s.b) > 0 && len(out.frames) < 64 {
		switch s.byte() % wopCount {
		case wopFrame:
			track := int(s.byte())%len(types) + 1
			flags := s.byte()
			switch flags & 3 % wtCount {
			case wtStep:
				asked += int64(s.byte())
			case wtBack:
				asked -= int64(s.byte())
			case wtJump:
				asked += int64(int32(s.u32()))
			}
			size := int(s.byte())
			if flags&0x20 != 0 {
				size *= 16
			}
			write(track, flags&0x10 != 0, size)
		case wopBig:
			track := int(s.byte())%len(types) + 1
			asked += int64(s.byte())
			write(track, true, 70000)
		case wopFlush:
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			flushedFrames, flushedEnd = len(out.frames), endAsked
		case wopAddTrack:
			tr := fuzzTracks[int(s.byte())%len(fuzzTracks)]
			n, err := w.AddTrack(tr)
			if err != nil {
				if len(types) < 20 {
					t.Fatalf("track %d not added: %v", len(types)+1, err)
				}
				continue // the header's room is full
			}
			if types = append(types, tr.Type); n != len(types) {
				t.Fatalf("AddTrack gave track %d, want %d", n, len(types))
			}
		case wopSetEnd:
			end := asked + int64(s.byte())
			w.SetEnd(end)
			endAsked = max(endAsked, end)
		}
	}
	for _, tr := range w.tracks {
		out.tracks = append(out.tracks, tr.CodecID)
		out.delays = append(out.delays, int64((tr.CodecDelay+time.Millisecond/2)/time.Millisecond))
	}
	if abandon {
		w.Abandon()
		out.onDisk = 0
		for _, f := range out.frames {
			if f.end <= w.bufAt {
				out.onDisk++
			}
		}
		out.durFrames, out.durEnd = flushedFrames, flushedEnd
		return out
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out.closed = true
	out.onDisk, out.durFrames, out.durEnd = len(out.frames), len(out.frames), endAsked
	return out
}

// written is what writeScript wrote.
type written struct {
	tracks    []string // codec IDs
	delays    []int64  // the tracks' codec delays in ms, as ffmpeg rounds them
	frames    []writtenFrame
	onDisk    int   // how many of frames reached the file
	durFrames int   // how many of frames the header's duration counts
	durEnd    int64 // the latest SetEnd it counts
	closed    bool
	cues      bool // a frame made a cue point (a closed file has them)
}

type wscript struct{ b []byte }

func (s *wscript) byte() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *wscript) u32() uint32 {
	return uint32(s.byte())<<24 | uint32(s.byte())<<16 | uint32(s.byte())<<8 | uint32(s.byte())
}

// parserNoise reports whether ffprobe's complaints, if any, are only its
// H.264 and AV1 parsers' about the frames' bytes (random after a length
// or an OBU header), in a file that has such a track. Anything else, from
// the Matroska reader above all, is a fault of the file.
func parserNoise(stderr string, codecs []string) bool {
	if stderr == "" {
		return true
	}
	if !slices.Contains(codecs, "V_MPEG4/ISO/AVC") && !slices.Contains(codecs, "V_AV1") {
		return false
	}
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "[h264 @") && !strings.HasPrefix(line, "[NULL @") &&
			!strings.HasPrefix(line, "Last message repeated") {
			return false
		}
	}
	return true
}

// checkWritten reads the file back with ffprobe and Inspect.
func checkWritten(t *testing.T, ffprobe, path string, wr written) {
	cmd := exec.Command(ffprobe, "-v", "error", "-nofind_stream_info", "-show_data_hash", "adler32",
		"-show_entries", "packet=stream_index,pts,flags,size,data_hash", "-of", "csv=p=0", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || !parserNoise(stderr.String(), wr.tracks) {
		t.Fatalf("ffprobe: %v\n%s", err, stderr.Bytes())
	}
	lines := strings.Fields(stdout.String())
	if len(lines) != wr.onDisk {
		t.Fatalf("ffprobe read %d packets, want %d:\n%s", len(lines), wr.onDisk, stdout.Bytes())
	}
	pts := make([]int64, len(lines))
	lastOfTrack := map[int]int64{}
	latest := int64(-1)
	for i, line := range lines {
		f := wr.frames[i]
		// stream_index,pts,size,flags,data_hash
		fields := strings.Split(line, ",")
		if len(fields) != 5 {
			t.Fatalf("packet %d: %q", i, line)
		}
		stream, _ := strconv.Atoi(fields[0])
		pts[i], _ = strconv.ParseInt(fields[1], 10, 64)
		pts[i] += wr.delays[f.track-1] // ffmpeg's Opus packets start after the pre-skip
		size, _ := strconv.Atoi(fields[2])
		want := fmt.Sprintf("adler32:%08x", f.hash)
		// ffmpeg's H.264 and AV1 parsers flag keyframes by the bytes, random here.
		parsed := wr.tracks[f.track-1] == "V_MPEG4/ISO/AVC" || wr.tracks[f.track-1] == "V_AV1"
		if stream != f.track-1 || size != f.size || fields[4] != want || !parsed && strings.Contains(fields[3], "K") != f.key {
			t.Fatalf("packet %d is %q; want track %d, %d bytes, %s, keyframe %v", i, line, f.track, f.size, want, f.key)
		}
		asked := max(f.asked, 0)
		if pts[i] < asked {
			t.Fatalf("packet %d at %d ms, asked for %d", i, pts[i], f.asked)
		}
		last, seen := lastOfTrack[f.track]
		if asked > latest && (!seen || asked > last) && pts[i] != asked {
			t.Fatalf("packet %d at %d ms, asked for %d, after every frame before", i, pts[i], f.asked)
		}
		if pts[i] < latest || seen && pts[i] <= last {
			t.Fatalf("packet %d at %d ms: after one at %d in the file, %d on its track", i, pts[i], latest, last)
		}
		lastOfTrack[f.track] = pts[i]
		latest = pts[i]
	}
	info, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	durMs := max(wr.durEnd, 0)
	for _, p := range pts[:min(wr.durFrames, len(pts))] {
		durMs = max(durMs, p)
	}
	wantDur := time.Duration(float64(durMs) * float64(time.Millisecond))
	// A file has a cluster from the start, and one more at most per frame.
	if info.Finished != wr.closed || info.Cues != (wr.closed && wr.cues) || info.Duration != wantDur ||
		info.Clusters < 1 || info.Clusters > wr.onDisk+1 {
		t.Fatalf("Inspect: %+v; want finished %v, cues %v, duration %v, 1 to 1 + %d clusters",
			info, wr.closed, wr.closed && wr.cues, wantDur, wr.onDisk)
	}
}
