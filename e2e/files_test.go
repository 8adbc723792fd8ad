package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/client"
)

// ffmpegPath finds ffmpeg; outside CI a missing one skips, in CI it fails.
func ffmpegPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("ffmpeg"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("ffmpeg is not installed (deploy/scripts/test.sh installs it)")
	}
	t.Skip("ffmpeg is not installed; run deploy/scripts/test.sh to install it")
	return ""
}

// The Go client publishes real VP8 and Opus from files ffmpeg made; another
// client receives both.
func TestGoClientPublishesFiles(t *testing.T) {
	ffmpeg := ffmpegPath(t)
	dir := t.TempDir()
	ivf, ogg := filepath.Join(dir, "clip.ivf"), filepath.Join(dir, "clip.ogg")
	for _, args := range [][]string{
		{"-f", "lavfi", "-i", "testsrc=size=320x240:rate=30", "-t", "3", "-c:v", "libvpx", "-g", "30", "-b:v", "300k", ivf},
		{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", "3", "-c:a", "libopus", "-page_duration", "20000", ogg},
	} {
		cmd := exec.Command(ffmpeg, append([]string{"-v", "error", "-y"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
	}
	srv := startMedia(t, loopbackConfig(22900, 22909, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub := joinParticipant(t, ctx, srv.WS, "files", "viewer", false)

	pub, err := client.Dial(ctx, client.Options{URL: srv.WS, DisplayName: "files", Sources: []string{"audio:mic", "video:cam"}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if _, err := pub.JoinRoom(ctx, "files"); err != nil {
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
	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 90000}, "cam", "files")
	audio, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", "files")
	if _, err := pub.Publish(ctx, client.LocalTrack{Track: video, Source: "video:cam"}, client.LocalTrack{Track: audio, Source: "audio:mic"}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = client.Play(ctx, video, videoSrc) }()
	go func() { _ = client.Play(ctx, audio, audioSrc) }()
	for _, src := range []string{"video:cam", "audio:mic"} {
		key := pub.PeerID + "/" + src
		waitFor(t, 10*time.Second, "viewer receiving "+src+" from the files", func() bool { return sub.count(key) > 20 })
	}
}
