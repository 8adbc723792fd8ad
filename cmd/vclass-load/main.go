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
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/client"
)

// Bounds on what one run may ask for.
const (
	maxClients  = 1500
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

	lean        bool
	verifyEvery int
	tick        time.Duration
	steps       []int  // subscribers at each step of a sweep
	svg         string // the sweep's chart
	cpuProfile  string
	joins       int
	joinGap     time.Duration
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
	flag.BoolVar(&o.lean, "lean", false, "lean subscribers: real signaling, ICE, DTLS, NACKs and congestion feedback, packets taken by their headers (a batch a tick per socket, one in -verify-every decrypted): the load tool costs far less than the server")
	flag.IntVar(&o.verifyEvery, "verify-every", 50, "with -lean, decrypt (authenticate) one packet in this many per stream")
	flag.DurationVar(&o.tick, "tick", 20*time.Millisecond, "with -lean, how often each socket is read (arrival times stay the kernel's)")
	flag.Func("steps", "a sweep: subscribers at each step, e.g. 100,200,400 (each step adds to the last, waits -warmup and measures -duration; instead of -subscribers)", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 || len(o.steps) > 0 && n <= o.steps[len(o.steps)-1] {
				return errors.New("want rising numbers of subscribers, e.g. 100,200,400")
			}
			o.steps = append(o.steps, n)
		}
		return nil
	})
	flag.StringVar(&o.svg, "svg", "", "with -steps, write a chart of the sweep to this SVG file")
	flag.IntVar(&o.joins, "joins", 0, "then time this many joins, one after another: to joinRoom's answer, the first camera packet and the end of the first camera frame")
	flag.DurationVar(&o.joinGap, "join-gap", time.Second, "with -joins, the time between one joiner leaving and the next dialing")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write the load tool's own CPU profile of the run to this file (go tool pprof)")
	flag.BoolVar(&o.failover, "failover", false, "measure recovery from a dead node: -url lists the cluster's nodes (comma-separated); -duration is how long to wait for it")
	flag.IntVar(&o.rooms, "rooms", 0, "many rooms: this many rooms of -per-room members, each publishing video (and -audio) and receiving the others (-lean or not); with -failover the rooms of sessions (default 4)")
	flag.IntVar(&o.perRoom, "per-room", 3, "members per room (with -rooms or -failover)")
	flag.Parse()
	if o.recorder != "" {
		o.publishers, o.subscribers, o.audio = o.recordings, 0, true
	}
	if o.failover && o.rooms == 0 {
		o.rooms = 4
	}
	if o.rooms > 0 && !o.failover && (o.recorder != "" || len(o.steps) > 0 || o.joins > 0) {
		fmt.Fprintln(os.Stderr, "vclass-load: -rooms goes with neither -recorder, -steps nor -joins")
		os.Exit(2)
	}
	if o.rooms < 0 || o.rooms > 0 && o.perRoom < 2 {
		fmt.Fprintln(os.Stderr, "vclass-load: -rooms and -failover need at least 1 room of 2 members")
		os.Exit(2)
	}
	if o.rooms > 0 {
		o.publishers, o.subscribers = o.rooms*o.perRoom, 0
	}
	if len(o.steps) > 0 {
		o.subscribers = o.steps[len(o.steps)-1]
	}
	if o.verifyEvery < 1 || o.verifyEvery > 1000 { // far apart, SRTP's rollover guess would fail
		fmt.Fprintln(os.Stderr, "vclass-load: -verify-every 1 to 1000")
		os.Exit(2)
	}
	if (o.svg != "" || o.joins > 0) && (o.recorder != "" || o.failover) || o.svg != "" && len(o.steps) == 0 {
		fmt.Fprintln(os.Stderr, "vclass-load: -svg goes with -steps, -joins with neither -recorder nor -failover")
		os.Exit(2)
	}
	if o.publishers+o.subscribers > maxClients || o.publishers < 1 || o.subscribers < 0 || o.joins < 0 || o.joins > 1000 {
		fmt.Fprintf(os.Stderr, "vclass-load: 1 to %d clients in all, at most 1000 joins\n", maxClients)
		os.Exit(2)
	}
	if time.Duration(max(len(o.steps), 1))*(o.warmup+o.duration) > maxDuration {
		fmt.Fprintf(os.Stderr, "vclass-load: (warmup + duration) × steps at most %v\n", maxDuration)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vclass-load:", err)
			os.Exit(1)
		}
	}
	runLoad := run
	switch {
	case o.recorder != "":
		runLoad = runRecorder
	case o.failover:
		runLoad = runFailover
	case o.rooms > 0:
		runLoad = runRooms
	}
	err := runLoad(ctx, o, os.Stdout)
	pprof.StopCPUProfile() // (none running: nothing)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vclass-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	steps := o.steps
	if len(steps) == 0 {
		steps = []int{o.subscribers}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(len(steps))*(o.warmup+o.duration+time.Minute)+time.Duration(o.joins)*(11*time.Second+o.joinGap))
	defer cancel()
	metricsURL := "http" + strings.TrimSuffix(strings.TrimPrefix(o.url, "ws"), "/ws") + "/metrics"

	var received atomic.Int64
	var lean leanCounts
	var clients []*client.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	subscribers := 0
	subscribe := func(n int) error {
		for ; subscribers < n; subscribers++ {
			c, err := client.Dial(ctx, o.receiving(client.Options{URL: o.url, DisplayName: fmt.Sprintf("sub%d", subscribers)}))
			if err != nil {
				return err
			}
			clients = append(clients, c)
			c.OnTrack(o.receiver(&lean, &received))
			if _, err := c.JoinRoom(ctx, o.room); err != nil {
				return err
			}
		}
		return nil
	}
	if err := subscribe(steps[0]); err != nil {
		return err
	}
	var wg sync.WaitGroup
	playCtx, stopPlaying := context.WithCancel(ctx)
	defer func() {
		stopPlaying()
		wg.Wait()
	}()
	for i := range o.publishers {
		c, err := publish(playCtx, o, o.room, i, &wg, nil)
		if err != nil {
			return err
		}
		clients = append(clients, c)
	}

	var rows []stepResult
	for i, n := range steps {
		if i > 0 {
			if err := subscribe(n); err != nil {
				return err
			}
		}
		r, err := measure(ctx, o, metricsURL, n, &lean, &received)
		if err != nil {
			return err
		}
		if len(steps) == 1 {
			r.print(out, o)
		} else {
			if i == 0 {
				fmt.Fprintln(out, stepHeader)
			}
			fmt.Fprintln(out, r.row())
		}
		rows = append(rows, r)
	}
	if o.svg != "" {
		if err := os.WriteFile(o.svg, []byte(kneeChart(rows, o)), 0o644); err != nil {
			return err
		}
	}
	if o.joins > 0 {
		return measureJoins(ctx, o, o.joins, out)
	}
	return nil
}

// measure lets the streams settle for -warmup, then measures one window
// of -duration: the server's figures from its /metrics before and after,
// the subscribers' (lean or full) and the load tool's own.
func measure(ctx context.Context, o options, metricsURL string, subscribers int, lean *leanCounts, received *atomic.Int64) (stepResult, error) {
	if err := sleep(ctx, o.warmup); err != nil {
		return stepResult{}, err
	}
	before, err := scrape(ctx, metricsURL)
	if err != nil {
		return stepResult{}, err
	}
	lean0, cpu0 := lean.snapshot(), selfCPU()
	rx0, t0 := received.Load(), time.Now()
	if err := sleep(ctx, o.duration); err != nil {
		return stepResult{}, err
	}
	after, err := scrape(ctx, metricsURL)
	if err != nil {
		return stepResult{}, err
	}
	r := stepResult{subscribers: subscribers, window: time.Since(t0).Seconds(), toolCPU: (selfCPU() - cpu0).Seconds(),
		rx: float64(received.Load() - rx0)}
	r.server(before, after)
	if o.lean {
		r.leanStats(lean0, lean.snapshot())
	}
	return r, nil
}

// sleep waits d, or until ctx ends (its error then).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stepResult is one measuring window: the server's figures from its
// /metrics, the subscribers' and the load tool's own.
type stepResult struct {
	subscribers                   int
	window                        float64 // seconds
	inPkts, outPkts, cpu, rss     float64
	goroutines                    float64
	rx, toolCPU                   float64
	leanOn                        bool
	tracks, lost, expected, dupes int64
	forged, unchecked             int64
	p50, p99                      time.Duration
}

func (r *stepResult) server(before, after map[string]float64) {
	r.outPkts = after[`vclass_rtp_packets_total{direction="out"}`] - before[`vclass_rtp_packets_total{direction="out"}`]
	r.inPkts = after[`vclass_rtp_packets_total{direction="in"}`] - before[`vclass_rtp_packets_total{direction="in"}`]
	r.cpu = after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]
	r.rss = after["process_resident_memory_bytes"]
	r.goroutines = after["go_goroutines"]
}

func (r *stepResult) leanStats(a, b leanSnapshot) {
	r.leanOn = true
	r.rx = float64(b.received - a.received)
	r.tracks, r.expected = b.tracks, b.expected-a.expected
	r.lost = r.expected - (b.received - a.received)
	r.dupes, r.forged, r.unchecked = b.dupes-a.dupes, b.forged-a.forged, b.unchecked-a.unchecked
	r.p50, r.p99 = quantile(a.latency, b.latency, 0.5), quantile(a.latency, b.latency, 0.99)
}

// lossPercent is the window's loss; a late packet of the window before
// counted in this one can make it a little below 0, shown as 0.
func (r *stepResult) lossPercent() float64 {
	return max(0, 100*float64(r.lost)/float64(max(r.expected, 1)))
}

// print writes one window's figures in full.
func (r *stepResult) print(out io.Writer, o options) {
	e := r.window
	fmt.Fprintf(out, "publishers %d, subscribers %d, window %.1f s\n", o.publishers, r.subscribers, e)
	fmt.Fprintf(out, "server: in %.0f packets/s, out %.0f packets/s, CPU %.1f %% of a core\n", r.inPkts/e, r.outPkts/e, 100*r.cpu/e)
	if r.outPkts > 0 {
		fmt.Fprintf(out, "server CPU per forwarded packet: %.2f µs\n", r.cpu/r.outPkts*1e6)
	}
	fmt.Fprintf(out, "server RSS: %.1f MiB, goroutines %.0f\n", r.rss/(1<<20), r.goroutines)
	if r.outPkts > 0 {
		fmt.Fprintf(out, "subscribers received %.0f packets/s (%.2f %% of what the server sent)\n", r.rx/e, 100*r.rx/r.outPkts)
	}
	if r.rx > 0 {
		fmt.Fprintf(out, "load tool CPU: %.1f %% of a core, %.2f µs per received packet (its publishers included)\n", 100*r.toolCPU/e, r.toolCPU/r.rx*1e6)
	}
	if r.leanOn {
		fmt.Fprintf(out, "lean: %d tracks, lost %d of %d (%.3f %%), duplicates %d, forged %d, unchecked %.1f %%\n",
			r.tracks, r.lost, r.expected, r.lossPercent(), r.dupes, r.forged, 100*float64(r.unchecked)/max(r.rx, 1))
		fmt.Fprintf(out, "latency, capture to arrival (a frame's first packet): p50 %v, p99 %v\n", r.p50, r.p99)
	}
}

const stepHeader = "subscribers  out pkt/s  server CPU %  µs/pkt  RSS MiB  received %  lost %   p50 ms  p99 ms  tool µs/pkt"

// row is one window's figures as a line of the sweep's table.
func (r *stepResult) row() string {
	e := r.window
	return fmt.Sprintf("%11d  %9.0f  %12.1f  %6.2f  %7.1f  %10.2f  %6.3f  %7.1f  %6.1f  %11.2f",
		r.subscribers, r.outPkts/e, 100*r.cpu/e, r.cpu/max(r.outPkts, 1)*1e6, r.rss/(1<<20), 100*r.rx/max(r.outPkts, 1),
		r.lossPercent(), r.p50.Seconds()*1e3, r.p99.Seconds()*1e3, r.toolCPU/max(r.rx, 1)*1e6)
}

// selfCPU is the CPU time this process used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// receiving sets a subscriber's receive options: lean or not.
func (o options) receiving(opts client.Options) client.Options {
	if o.lean {
		opts.ReceiveEvery, opts.VerifyEvery = o.tick, o.verifyEvery
	}
	return opts
}

// receiver takes a subscriber's tracks: lean ones counted in lean, full
// ones read and counted in received.
func (o options) receiver(lean *leanCounts, received *atomic.Int64) func(*client.RemoteTrack) {
	return func(rt *client.RemoteTrack) {
		if o.lean {
			_ = rt.ReceiveInfo(newLeanTrack(lean, rt).add)
			return
		}
		for {
			if _, _, err := rt.Track.ReadRTP(); err != nil {
				return
			}
			received.Add(1)
		}
	}
}

// publish starts one publisher of synthetic video (and audio). With recv,
// it also receives the room's other tracks (-lean or not).
func publish(ctx context.Context, o options, room string, i int, wg *sync.WaitGroup, recv func(*client.RemoteTrack)) (*client.Client, error) {
	sources := []string{"video:cam"}
	if o.audio {
		sources = append(sources, "audio:mic")
	}
	opts := client.Options{URL: o.url, DisplayName: fmt.Sprintf("pub%d", i), Sources: sources}
	if recv != nil {
		opts = o.receiving(opts)
	}
	c, err := client.Dial(ctx, opts)
	if err != nil {
		return nil, err
	}
	if recv != nil {
		c.OnTrack(recv)
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
