package recorder

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/cmplx"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vclass/vclass/config"
)

// Size and rate of class.mp4: cameras' rate (each of their frames
// shown, the one nearest in time; a flash is at most 17 ms off its beep).
const (
	composeWidth  = 1280
	composeHeight = 720
	composeFPS    = 30
)

// framePhase gathers where a file's video frames fall between the
// canvas's (30 a second): a camera at that rate keeps one place, and
// class.mp4 would show each of its frames up to half a frame early or
// late against its sound. The file's shift puts them on the canvas's
// frames, sound and all (a participant moved by under 17 ms against the
// others, lips and voice together).
type framePhase struct {
	sum complex128 // unit vectors, one a frame, at its place in a canvas frame
	n   int
}

func (p *framePhase) add(at time.Duration) {
	turns := math.Mod(at.Seconds()*composeFPS, 1)
	p.sum += cmplx.Rect(1, 2*math.Pi*turns)
	p.n++
}

// shift is how far to move the file: none unless its frames keep one
// place (a camera at another rate goes all around, and is on average
// where it should be).
func (p *framePhase) shift() time.Duration {
	if p.n < 30 || cmplx.Abs(p.sum)/float64(p.n) < 0.8 {
		return 0
	}
	turns := cmplx.Phase(p.sum) / (2 * math.Pi) // -0.5..0.5 of a frame
	return -time.Duration(turns * float64(time.Second) / composeFPS)
}

// composeStart is where f begins in class.mp4: its offset, moved onto
// the canvas's frames; forward when back would be before the start.
func composeStart(f File) float64 {
	if at := f.Offset + f.frameShift; at >= 0 {
		return at
	}
	return f.Offset + f.frameShift + 1.0/composeFPS
}

func hasVideo(f File) bool {
	for _, c := range f.Codecs {
		if c == "vp8" || c == "vp9" || c == "h264" || c == "av1" {
			return true
		}
	}
	return false
}

func hasAudio(f File) bool {
	for _, c := range f.Codecs {
		if c == "opus" || c == "pcma" || c == "pcmu" {
			return true
		}
	}
	return false
}

// composeArgs builds the ffmpeg command line that makes class.mp4: the
// video tiles in a grid on a black canvas, each from its offset on, and
// every audio track mixed, gaps filled with silence so that nothing moves
// in time. opts.CommandOptions go first, opts.CommandOutputOptions just
// before the output.
func composeArgs(dir string, files []File, duration float64, opts config.Ffmpeg, out string) []string {
	args := append([]string{"-nostdin", "-y", "-v", "error"}, opts.CommandOptions...)
	var inputs []File
	for _, f := range files {
		if hasVideo(f) || hasAudio(f) {
			inputs = append(inputs, f)
			args = append(args, "-i", filepath.Join(dir, f.Name))
		}
	}
	var tiles []int
	for i, f := range inputs {
		if hasVideo(f) {
			tiles = append(tiles, i)
		}
	}
	cols := max(1, int(math.Ceil(math.Sqrt(float64(len(tiles))))))
	rows := max(1, (len(tiles)+cols-1)/cols)
	tw, th := composeWidth/cols&^1, composeHeight/rows&^1

	var g strings.Builder
	fmt.Fprintf(&g, "color=c=black:s=%dx%d:r=%d:d=%.3f[base0]", composeWidth, composeHeight, composeFPS, duration)
	for n, i := range tiles {
		fmt.Fprintf(&g, ";[%d:v]setpts=PTS+%.3f/TB,scale=%d:%d:force_original_aspect_ratio=decrease,pad=%d:%d:(ow-iw)/2:(oh-ih)/2,setsar=1[v%d]",
			i, composeStart(inputs[i]), tw, th, tw, th, n)
		x, y := (n%cols)*tw, (n/cols)*th
		fmt.Fprintf(&g, ";[base%d][v%d]overlay=x=%d:y=%d:eof_action=pass:repeatlast=0[base%d]", n, n, x, y, n+1)
	}
	fmt.Fprintf(&g, ";[base%d]format=yuv420p[vout]", len(tiles))
	var mixed []string
	for i, f := range inputs {
		if !hasAudio(f) {
			continue
		}
		// Each sound at its time: a gap over 20 ms filled with silence
		// (a stalled microphone), smaller moves (the recorder's slewing)
		// followed by stretching at most 2 %.
		fmt.Fprintf(&g, ";[%d:a]asetpts=PTS+%.3f/TB,aresample=48000:async=1000:min_hard_comp=0.02:first_pts=0,aformat=channel_layouts=stereo[a%d]", i, composeStart(f), i)
		mixed = append(mixed, fmt.Sprintf("[a%d]", i))
	}
	switch len(mixed) {
	case 0:
		fmt.Fprintf(&g, ";anullsrc=r=48000:cl=stereo,atrim=0:%.3f[aout]", duration)
	case 1:
		fmt.Fprintf(&g, ";%sanull[aout]", mixed[0])
	default:
		fmt.Fprintf(&g, ";%samix=inputs=%d:duration=longest:normalize=0[aout]", strings.Join(mixed, ""), len(mixed))
	}
	args = append(args, "-filter_complex", g.String(), "-map", "[vout]", "-map", "[aout]",
		"-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-r", fmt.Sprint(composeFPS),
		"-c:a", "aac", "-b:a", "128k", "-t", fmt.Sprintf("%.3f", duration), "-movflags", "+faststart")
	args = append(args, opts.CommandOutputOptions...)
	return append(args, out)
}

// compose runs ffmpeg; the output appears only when it succeeded.
func compose(ctx context.Context, ffmpeg, dir string, files []File, duration float64, opts config.Ffmpeg, out string) error {
	tmp := strings.TrimSuffix(out, ".mp4") + ".part.mp4"
	cmd := exec.CommandContext(ctx, ffmpeg, composeArgs(dir, files, duration, opts, tmp)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 400 {
			msg = "…" + msg[len(msg)-400:]
		}
		return fmt.Errorf("ffmpeg: %v: %s", err, msg)
	}
	return os.Rename(tmp, out)
}
