package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/client"
)

// tcpSubscriberEnv makes the test binary a subscriber over ICE-TCP (a
// process the test can freeze): "wsURL room".
const tcpSubscriberEnv = "VCLASS_E2E_TCP_SUBSCRIBER"

func runTCPSubscriber(spec string) int {
	wsURL, roomID, _ := strings.Cut(spec, " ")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URL: wsURL, DisplayName: "frozen", TCPOnly: true})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	var once atomic.Bool
	c.OnTrack(func(rt *client.RemoteTrack) {
		for {
			if _, _, err := rt.Track.ReadRTP(); err != nil {
				return
			}
			if rt.Source == "video:cam" && once.CompareAndSwap(false, true) {
				fmt.Println("receiving")
			}
		}
	})
	if _, err := c.JoinRoom(ctx, roomID); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	<-ctx.Done() // bounded: the test kills it long before
	return 0
}

func droppedOut(t *testing.T, srv *mediaServer) float64 {
	_, body := srv.get(t, "/metrics")
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, "vclass_rtp_dropped_total "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n
		}
	}
	return 0
}

// A subscriber that stops reading (a frozen process on ICE-TCP, whose
// buffers fill) loses its own packets and delays nobody else.
func TestFrozenSubscriberDelaysNoOne(t *testing.T) {
	srv := startMedia(t, loopbackConfig(22980, 22989, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pub, err := client.Dial(ctx, client.Options{URL: srv.WS, DisplayName: "teacher", Sources: []string{"video:cam"}})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if _, err := pub.JoinRoom(ctx, "frozen"); err != nil {
		t.Fatal(err)
	}
	watcher := joinParticipant(t, ctx, srv.WS, "frozen", "watcher", false)

	// The subscriber to freeze, in its own process.
	sub := exec.Command(os.Args[0], "-test.run=^$")
	sub.Env = append(os.Environ(), tcpSubscriberEnv+"="+srv.WS+" frozen")
	out, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Process.Kill(); _ = sub.Wait() }()

	// About 1.8 MB/s of video, to fill the frozen subscriber's buffers fast.
	video, _ := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam", "teacher")
	src := client.SyntheticVP8(30, 60000, 30)
	if _, err := pub.Publish(ctx, client.LocalTrack{Track: video, Source: "video:cam", OnKeyframeRequest: src.RequestKeyframe}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = client.Play(ctx, video, src) }()

	receiving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			receiving <- sc.Text()
		}
	}()
	select {
	case line := <-receiving:
		if line != "receiving" {
			t.Fatalf("subscriber process: %s", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the ICE-TCP subscriber received nothing")
	}
	key := pub.PeerID + "/video:cam"
	rate := func() float64 {
		before, start := watcher.count(key), time.Now()
		time.Sleep(2 * time.Second) // a measuring window, not a wait for an event
		return float64(watcher.count(key)-before) / time.Since(start).Seconds()
	}
	baseline := rate()

	if err := sub.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	dropped0 := droppedOut(t, srv)
	waitFor(t, 30*time.Second, "the frozen subscriber's buffers full (packets dropped for it)", func() bool {
		return droppedOut(t, srv) > dropped0+100
	})
	during := rate()
	t.Logf("watcher: %.0f packets/s before the freeze, %.0f with the frozen subscriber's buffers full", baseline, during)
	if during < baseline*0.9 {
		t.Errorf("the watcher's rate fell from %.0f to %.0f packets/s while another subscriber was frozen", baseline, during)
	}
}
