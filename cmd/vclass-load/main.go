// Command vclass-load puts a measured load on a running vclass-media: a
// room with publishers of synthetic video (and audio) and many subscribing
// Go clients, for a bounded time. It reads the server's /metrics before
// and after the measuring window and prints what one forwarded packet cost
// the server (CPU) and what the server holds in memory.
//
//	vclass-load -url ws://127.0.0.1:8011/ws -subscribers 50 -duration 20s
//
// With -recorder it loads a vclass-recorder instead: N rooms with one
// publisher each, every room recorded, and prints the recorder's CPU and
// memory per recording.
//
//	vclass-load -recorder https://127.0.0.1:8443 -recordings 10 -insecure
//
// With -failover it measures how a cluster recovers from a dead node:
// rooms of Go sessions (client.Session) entering at the given nodes in
// turn; once everyone receives everyone it prints "ready", and after the
// caller has killed a node, how long each disrupted room took until every
// session received every other again (deploy/scripts/bench-failover.sh).
//
//	vclass-load -failover -url ws://127.0.0.1:18011/ws,ws://127.0.0.1:18012/ws -rooms 10 -per-room 4 -duration 60s
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/client"
)

// Bounds on what one run may ask for.
const (
	maxClients  = 500
	maxDuration = 10 * time.Minute
)

type options struct {
	url, room               string
	publishers, subscribers int
	warmup, duration        time.Duration
	fps, frameBytes         int
	audio, simulcast        bool

	recorder, recorderUser, recorderPass string
	recordings                           int
	insecure                             bool

	failover       bool
	rooms, perRoom int
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "ws://127.0.0.1:8011/ws", "vclass-media WebSocket URL (its /metrics is read too)")
	flag.StringVar(&o.room, "room", "load", "room to load")
	flag.IntVar(&o.publishers, "publishers", 1, "publishing clients (synthetic VP8)")
	flag.IntVar(&o.subscribers, "subscribers", 10, "receiving clients")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "time to let every stream start before measuring")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measuring window")
	flag.IntVar(&o.fps, "fps", 30, "video frames per second")
	flag.IntVar(&o.frameBytes, "frame-bytes", 7700, "bytes per video frame (7700 at 30 fps: ~210 packets/s of ~1100 bytes)")
	flag.BoolVar(&o.audio, "audio", false, "publishers also send Opus")
	flag.BoolVar(&o.simulcast, "simulcast", false, "publishers send three simulcast layers: -frame-bytes is the largest, the others a quarter and a sixteenth of it")
	flag.StringVar(&o.recorder, "recorder", "", "load this vclass-recorder (https://host:port) instead: one room per recording")
	flag.StringVar(&o.recorderUser, "recorder-user", "user1", "recorder client login")
	flag.StringVar(&o.recorderPass, "recorder-pass", "user1", "recorder client password")
	flag.IntVar(&o.recordings, "recordings", 1, "concurrent recordings (with -recorder)")
	flag.BoolVar(&o.insecure, "insecure", false, "do not verify the recorder's certificate (a self-signed one)")
	flag.BoolVar(&o.failover, "failover", false, "measure recovery from a dead node: -url lists the cluster's nodes (comma-separated); -duration is how long to wait for it")
	flag.IntVar(&o.rooms, "rooms", 4, "rooms (with -failover)")
	flag.IntVar(&o.perRoom, "per-room", 3, "sessions per room, each publishing video (with -failover)")
	flag.Parse()
	if o.recorder != "" {
		o.publishers, o.subscribers, o.audio = o.recordings, 0, true
	}
	if o.failover {
		if o.rooms < 1 || o.perRoom < 2 {
			fmt.Fprintln(os.Stderr, "vclass-load: -failover needs at least 1 room of 2 sessions")
			os.Exit(2)
		}
		o.publishers, o.subscribers = o.rooms*o.perRoom, 0
	}
	if o.publishers+o.subscribers > maxClients || o.publishers < 1 || o.subscribers < 0 {
		fmt.Fprintf(os.Stderr, "vclass-load: 1 to %d clients in all\n", maxClients)
		os.Exit(2)
	}
	if o.warmup+o.duration > maxDuration {
		fmt.Fprintf(os.Stderr, "vclass-load: warmup + duration at most %v\n", maxDuration)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	runLoad := run
	switch {
	case o.recorder != "":
		runLoad = runRecorder
	case o.failover:
		runLoad = runFailover
	}
	if err := runLoad(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "vclass-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, o.warmup+o.duration+time.Minute)
	defer cancel()
	metricsURL := "http" + strings.TrimSuffix(strings.TrimPrefix(o.url, "ws"), "/ws") + "/metrics"

	var received atomic.Int64
	var clients []*client.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for i := range o.subscribers {
		c, err := client.Dial(ctx, client.Options{URL: o.url, DisplayName: fmt.Sprintf("sub%d", i)})
		if err != nil {
			return err
		}
		clients = append(clients, c)
		c.OnTrack(func(rt *client.RemoteTrack) {
			for {
				if _, _, err := rt.Track.ReadRTP(); err != nil {
					return
				}
				received.Add(1)
			}
		})
		if _, err := c.JoinRoom(ctx, o.room); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	playCtx, stopPlaying := context.WithCancel(ctx)
	defer func() {
		stopPlaying()
		wg.Wait()
	}()
	for i := range o.publishers {
		c, err := publish(playCtx, o, o.room, i, &wg)
		if err != nil {
			return err
		}
		clients = append(clients, c)
	}

	select {
	case <-time.After(o.warmup):
	case <-ctx.Done():
		return ctx.Err()
	}
	before, err := scrape(ctx, metricsURL)
	if err != nil {
		return err
	}
	rx0, t0 := received.Load(), time.Now()
	select {
	case <-time.After(o.duration):
	case <-ctx.Done():
		return ctx.Err()
	}
	after, err := scrape(ctx, metricsURL)
	if err != nil {
		return err
	}
	elapsed := time.Since(t0).Seconds()
	rx := float64(received.Load() - rx0)

	outPkts := after[`vclass_rtp_packets_total{direction="out"}`] - before[`vclass_rtp_packets_total{direction="out"}`]
	inPkts := after[`vclass_rtp_packets_total{direction="in"}`] - before[`vclass_rtp_packets_total{direction="in"}`]
	cpu := after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]
	fmt.Fprintf(out, "publishers %d, subscribers %d, window %.1f s\n", o.publishers, o.subscribers, elapsed)
	fmt.Fprintf(out, "server: in %.0f packets/s, out %.0f packets/s, CPU %.1f %% of a core\n", inPkts/elapsed, outPkts/elapsed, 100*cpu/elapsed)
	if outPkts > 0 {
		fmt.Fprintf(out, "server CPU per forwarded packet: %.2f µs\n", cpu/outPkts*1e6)
	}
	fmt.Fprintf(out, "server RSS: %.1f MiB, goroutines %.0f\n", after["process_resident_memory_bytes"]/(1<<20), after["go_goroutines"])
	if outPkts > 0 {
		fmt.Fprintf(out, "subscribers received %.0f packets/s (%.2f %% of what the server sent)\n", rx/elapsed, 100*rx/outPkts)
	}
	return nil
}

// publish starts one publisher of synthetic video (and audio).
func publish(ctx context.Context, o options, room string, i int, wg *sync.WaitGroup) (*client.Client, error) {
	sources := []string{"video:cam"}
	if o.audio {
		sources = append(sources, "audio:mic")
	}
	c, err := client.Dial(ctx, client.Options{URL: o.url, DisplayName: fmt.Sprintf("pub%d", i), Sources: sources})
	if err != nil {
		return nil, err
	}
	if _, err := c.JoinRoom(ctx, room); err != nil {
		c.Close()
		return nil, err
	}
	cam, layers, err := cameraLayers(o, c.PeerID)
	if err != nil {
		c.Close()
		return nil, err
	}
	tracks := []client.LocalTrack{cam}
	var audio *webrtc.TrackLocalStaticSample
	if o.audio {
		audio, _ = webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", c.PeerID)
		tracks = append(tracks, client.LocalTrack{Track: audio, Source: "audio:mic"})
	}
	if _, err := c.Publish(ctx, tracks...); err != nil {
		c.Close()
		return nil, err
	}
	for _, l := range layers {
		wg.Add(1)
		go func() { defer wg.Done(); _ = client.Play(ctx, l.track, l.src) }()
	}
	if audio != nil {
		wg.Add(1)
		go func() { defer wg.Done(); _ = client.Play(ctx, audio, client.SyntheticOpus()) }()
	}
	return c, nil
}

// playing is one synthetic video stream a publisher plays.
type playing struct {
	track *webrtc.TrackLocalStaticSample
	src   *client.SyntheticVideo
}

// cameraLayers makes a publisher's synthetic camera: one stream, or with
// -simulcast three layers (a sixteenth, a quarter and all of -frame-bytes).
func cameraLayers(o options, stream string) (client.LocalTrack, []playing, error) {
	vp8 := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	if !o.simulcast {
		track, err := webrtc.NewTrackLocalStaticSample(vp8, "cam", stream)
		if err != nil {
			return client.LocalTrack{}, nil, err
		}
		src := client.SyntheticVP8(o.fps, o.frameBytes, 2*o.fps)
		return client.LocalTrack{Track: track, Source: "video:cam", OnKeyframeRequest: src.RequestKeyframe}, []playing{{track, src}}, nil
	}
	var plays []playing
	for i, rid := range []string{"l", "m", "h"} {
		track, err := webrtc.NewTrackLocalStaticSample(vp8, "cam", stream, webrtc.WithRTPStreamID(rid))
		if err != nil {
			return client.LocalTrack{}, nil, err
		}
		size := o.frameBytes >> (2 * (2 - i))
		plays = append(plays, playing{track, client.SyntheticVP8(o.fps, max(size, 200), 2*o.fps)})
	}
	lt := client.LocalTrack{Track: plays[0].track, Source: "video:cam", OnKeyframeRequest: plays[0].src.RequestKeyframe}
	for _, p := range plays[1:] {
		lt.Layers = append(lt.Layers, client.SimulcastLayer{Track: p.track, OnKeyframeRequest: p.src.RequestKeyframe})
	}
	return lt, plays, nil
}

// scrape reads the samples of a Prometheus text page, by name with labels.
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	return scrapeWith(ctx, http.DefaultClient, url)
}

func scrapeWith(ctx context.Context, hc *http.Client, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, errors.New("metrics: " + res.Status)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			samples[line[:i]] = v
		}
	}
	return samples, sc.Err()
}
