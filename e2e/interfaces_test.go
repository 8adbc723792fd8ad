package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/client"
)

// netnsClientEnv makes the test binary a Go participant (run inside a
// network namespace): "wsURL room". It publishes a synthetic camera,
// prints "peer ID" once in the room and "receiving" once a remote camera
// arrives, and stays until killed (at most a minute).
const netnsClientEnv = "VCLASS_E2E_NETNS_CLIENT"

func runNetnsClient(spec string) int {
	wsURL, roomID, _ := strings.Cut(spec, " ")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, client.Options{URL: wsURL, DisplayName: "netns", Sources: []string{"video:cam"}})
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	defer c.Close()
	var once atomic.Bool
	c.OnTrack(func(rt *client.RemoteTrack) {
		for n := 0; ; n++ {
			if _, _, err := rt.Track.ReadRTP(); err != nil {
				return
			}
			if rt.Source == "video:cam" && n == 20 && once.CompareAndSwap(false, true) {
				fmt.Println("receiving")
			}
		}
	})
	if _, err := c.JoinRoom(ctx, roomID); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	video, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "cam", "netns")
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	src := client.SyntheticVP8(30, 2500, 60)
	go func() { _ = client.Play(ctx, video, src) }()
	if _, err := c.Publish(ctx, client.LocalTrack{Track: video, Source: "video:cam", OnKeyframeRequest: src.RequestKeyframe}); err != nil {
		fmt.Println("error:", err)
		return 1
	}
	fmt.Println("peer", c.PeerID)
	<-ctx.Done()
	return 0
}

// A student whose only way to the server is a second interface of the
// server's machine, one that came up after the server started (a VPN, a
// second network, here a veth pair into a network namespace), joins and
// exchanges video with a teacher on the first, ten times out of ten, from
// Chromium and from the Go client. The server runs on its embedded default,
// listening on every interface.
func TestJoinsThroughASecondInterface(t *testing.T) {
	needRoot(t)
	srv := startDefaultMedia(t, "23100-23109")
	ns := newNetns(t)
	origin := "http://" + ns.hostIP + ":" + srv.port()
	const joins = 10

	teacher := openPage(t, srv.URL+"/?room=iface&name=Teacher&autojoin=1", "teacher")
	teacherID := inRoom(t, teacher)
	teacherDecodes := func(peer string, min float64) func() bool {
		return func() bool { f, _ := teacher.stats().inboundFrom(peer, "video:cam"); return f >= min }
	}

	t.Run("chromium", func(t *testing.T) {
		browser := ns.chromium(t, origin)
		for i := range joins {
			start := time.Now()
			p := openPageIn(t, browser, fmt.Sprintf("%s/?room=iface&name=Student%d&autojoin=1", origin, i), fmt.Sprintf("student %d", i))
			waitFor(t, 20*time.Second, fmt.Sprintf("join %d: the student in the room", i), func() bool { return p.peerID() != "" })
			id := p.peerID()
			waitFor(t, 20*time.Second, fmt.Sprintf("join %d: the student decoding the teacher", i), func() bool {
				f, _ := p.stats().inboundFrom(teacherID, "video:cam")
				return f >= 10
			})
			waitFor(t, 20*time.Second, fmt.Sprintf("join %d: the teacher decoding the student", i), teacherDecodes(id, 10))
			// Straight to a host candidate of the second interface, not through
			// a peer-reflexive one learnt from the server's own checks.
			for name, pair := range p.stats().Transports {
				if pair == nil || pair.Remote.Type != "host" || pair.Remote.Address != ns.hostIP {
					t.Errorf("join %d: the %s transport's pair is %+v, want the server's host candidate on %s", i, name, pair, ns.hostIP)
				}
			}
			t.Logf("join %d: video both ways %.1f s after opening the page", i, time.Since(start).Seconds())
			p.close()
		}
	})

	t.Run("go", func(t *testing.T) {
		for i := range joins {
			start := time.Now()
			cmd := ns.command(os.Args[0])
			cmd.Env = append(os.Environ(), netnsClientEnv+"=ws://"+ns.hostIP+":"+srv.port()+"/ws iface")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string, 8)
			go func() {
				defer close(lines)
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines <- sc.Text()
				}
			}()
			var id string
			receiving := false
			deadline := time.After(30 * time.Second)
			for id == "" || !receiving {
				select {
				case line, ok := <-lines:
					if !ok {
						t.Fatalf("join %d: the Go client ended (peer %q, receiving %v)", i, id, receiving)
					}
					if strings.HasPrefix(line, "error:") {
						t.Fatalf("join %d: %s", i, line)
					}
					if rest, ok := strings.CutPrefix(line, "peer "); ok {
						id = rest
					}
					receiving = receiving || line == "receiving"
				case <-deadline:
					_ = cmd.Process.Kill()
					t.Fatalf("join %d: the Go client did not join and receive within 30 s (peer %q, receiving %v)", i, id, receiving)
				}
			}
			// Synthetic frames do not decode: the teacher's page counts packets.
			waitFor(t, 20*time.Second, fmt.Sprintf("join %d: the teacher receiving the Go client", i), func() bool {
				for _, in := range teacher.stats().Inbound {
					if in.PeerID == id && in.Source == "video:cam" && in.PacketsReceived > 20 {
						return true
					}
				}
				return false
			})
			t.Logf("join %d: media both ways %.1f s after start", i, time.Since(start).Seconds())
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
}
