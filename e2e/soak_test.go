package e2e

// The soak of issue "hardening": many join/publish/leave cycles on
// vclass-media and many recordings on vclass-recorder, after which each
// server is back to the goroutines, file descriptors and memory it had
// after a warm-up. Short by default (100 media cycles, 20 recordings);
// the counts by hand:
//
//	VCLASS_SOAK=1 go test -race -count=1 -timeout 60m -run TestSoak -v ./e2e
//
// Both servers run with their per-address rate limits off: every client
// of a soak comes from 127.0.0.1, faster than a real address would. And
// both are built without the race detector, as they ship: a race-built
// server's memory grows with the detector's own records (measured here:
// RSS +46 % over 100 cycles, with the Go heap +0.7 MiB), which says
// nothing of ours. The tests' own clients run under -race as usual.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vclass/vclass/client"
	"github.com/vclass/vclass/internal/tcpproxy"
)

// soakCount is short in the test command, long with VCLASS_SOAK=1.
func soakCount(short, long int) int {
	if os.Getenv("VCLASS_SOAK") != "" {
		return long
	}
	return short
}

// usage is what a server process holds.
type usage struct {
	goroutines int   // go_goroutines from /metrics
	fds        int   // entries of /proc/PID/fd
	rss        int64 // VmRSS of /proc/PID/status, bytes
	rssAnon    int64 // of which RssAnon (the rest is mostly the binary's pages), for the log
	heap       int64 // go_memstats_heap_inuse_bytes from /metrics
}

func (u usage) String() string {
	return fmt.Sprintf("goroutines %d, fds %d, RSS %.1f MiB (anonymous %.1f), heap in use %.1f MiB",
		u.goroutines, u.fds, float64(u.rss)/(1<<20), float64(u.rssAnon)/(1<<20), float64(u.heap)/(1<<20))
}

// soakBound is how far above its baseline a figure may end: 10 %, and for
// counts at least a few more. A server at rest still has short-lived
// goroutines and descriptors of its own (the /metrics request being
// served and its keep-alive connection, a timer's goroutine, Pion's
// per-listener reader while a closed transport finishes): a handful,
// none per cycle.
func soakBound(base int64, slack int64) int64 { return base + max(base/10, slack) }

const soakCountSlack = 5

// over lists the figures of u above their bounds from base.
func (u usage) over(base usage) []string {
	var out []string
	check := func(what string, v, b, slack int64) {
		if v > soakBound(b, slack) {
			out = append(out, fmt.Sprintf("%s %d > %d (baseline %d)", what, v, soakBound(b, slack), b))
		}
	}
	check("goroutines", int64(u.goroutines), int64(base.goroutines), soakCountSlack)
	check("fds", int64(u.fds), int64(base.fds), soakCountSlack)
	check("RSS", u.rss, base.rss, 0)
	return out
}

// soakProbe reads a server's figures: metrics is its /metrics text. gc,
// when set, has the server collect garbage before a reading that counts
// (the baseline and the final ones, not those logged on the way).
type soakProbe struct {
	pid     int
	metrics func() (string, error)
	gc      func() error
}

// collected is a reading after a garbage collection, where the server
// offers one.
func (p soakProbe) collected(t *testing.T) usage {
	t.Helper()
	if p.gc != nil {
		if err := p.gc(); err != nil {
			t.Fatalf("asking for a garbage collection: %v", err)
		}
	}
	return p.read(t)
}

func (p soakProbe) read(t *testing.T) usage {
	t.Helper()
	body, err := p.metrics()
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	u := usage{
		goroutines: int(metricValue(t, body, "go_goroutines")),
		heap:       int64(metricValue(t, body, "go_memstats_heap_inuse_bytes")),
		fds:        fdCount(t, p.pid),
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		t.Fatal(err)
	}
	kib := func(field string) int64 {
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, field+":"); ok { // "   123456 kB"
				n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				if err != nil {
					t.Fatalf("%s %q: %v", field, v, err)
				}
				return n << 10
			}
		}
		t.Fatalf("no %s in /proc/%d/status", field, p.pid)
		return 0
	}
	u.rss, u.rssAnon = kib("VmRSS"), kib("RssAnon")
	return u
}

// settled reads until two readings a second apart have the same
// goroutines and fds (or 15 s passed), for a baseline not taken while
// something still closes.
func (p soakProbe) settled(t *testing.T) usage {
	t.Helper()
	prev := p.collected(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		time.Sleep(time.Second)
		u := p.collected(t)
		if (u.goroutines == prev.goroutines && u.fds == prev.fds) || time.Now().After(deadline) {
			return u
		}
		prev = u
	}
}

// backTo polls until every figure is within its bound of base (and ready
// holds), or fails after within naming what is not.
func (p soakProbe) backTo(t *testing.T, what string, base usage, within time.Duration, ready func() bool) {
	t.Helper()
	start := time.Now()
	var u usage
	for {
		u = p.collected(t)
		over := u.over(base)
		if len(over) == 0 && ready() {
			t.Logf("%s: final %v after %v of settling", what, u, time.Since(start).Round(100*time.Millisecond))
			logSoakChange(t, what, base, u)
			return
		}
		if time.Since(start) > within {
			logSoakChange(t, what, base, u)
			t.Fatalf("%s: not back to its baseline %v after %v: %s (ready: %v)", what, base, within, strings.Join(over, ", "), ready())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func logSoakChange(t *testing.T, what string, base, u usage) {
	t.Helper()
	pct := func(a, b int64) string { return fmt.Sprintf("%+.1f %%", 100*float64(b-a)/float64(a)) }
	t.Logf("%s: baseline → final: goroutines %d → %d (%s), fds %d → %d (%s), RSS %.1f → %.1f MiB (%s), heap in use %.1f → %.1f MiB (%s)",
		what, base.goroutines, u.goroutines, pct(int64(base.goroutines), int64(u.goroutines)),
		base.fds, u.fds, pct(int64(base.fds), int64(u.fds)),
		float64(base.rss)/(1<<20), float64(u.rss)/(1<<20), pct(base.rss, u.rss),
		float64(base.heap)/(1<<20), float64(u.heap)/(1<<20), pct(base.heap, u.heap))
}

func httpText(c *http.Client, url string) (string, error) {
	res, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: HTTP %d", url, res.StatusCode)
	}
	return string(b), err
}

// mediaProbe reads vclass-media's figures; with debugAddr (its
// VCLASS_DEBUG_ADDR) it has the server collect garbage through its
// profiles: /debug/pprof/heap?gc=1 runs a collection first.
func mediaProbe(srv *mediaServer, debugAddr string) soakProbe {
	c := &http.Client{Timeout: 5 * time.Second}
	p := soakProbe{pid: srv.cmd.Process.Pid, metrics: func() (string, error) { return httpText(c, srv.URL+"/metrics") }}
	if debugAddr != "" {
		p.gc = func() error {
			_, err := httpText(c, "http://"+debugAddr+"/debug/pprof/heap?gc=1")
			return err
		}
	}
	return p
}

// soakLeave is how a guest of the media soak ends its cycle.
type soakLeave int

const (
	leaveRoomThenClose soakLeave = iota // leaveRoom, then the socket's close handshake
	closeSocket                         // the close handshake alone: the server drops the peer at once
	severSocket                         // a reset, no close frame: the server keeps the peer 15 s for a resume
)

// soakGuest is how cycle i goes: half leave the room before closing their
// connection, the others just close it; every 25th has its connection
// severed instead (kept for its resume window, more would pile up); two in
// three wait until the staying viewer gets the guest's camera, the others
// leave as soon as their publish is answered (while ICE and DTLS may still
// be under way); every 50th checks audio and video both ways. The first
// five cycles, the shortest warm-up, have each kind.
func soakGuest(i int) (leave soakLeave, waitMedia, full bool) {
	switch {
	case i%25 == 3:
		leave = severSocket
	case i%2 == 0:
		leave = closeSocket
	}
	return leave, i%3 != 2, i%50 == 0
}

// Join/publish/leave cycles next to two peers that stay (one publishing,
// one only receiving) leave vclass-media with the goroutines, descriptors
// and memory it had after a warm-up.
func TestSoakMediaJoinPublishLeave(t *testing.T) {
	parallel(t)
	cycles := soakCount(100, 1000)
	warm := max(5, cycles/20)
	// Go returns memory to the system lazily, after collections: at rest
	// the server allocates little, and its RSS stayed some 7 % above the
	// baseline for a minute (heap in use up likewise, the live heap not:
	// heap profiles before and after showed nothing left over), and came
	// back to it within seconds of a collection asked for through the
	// profiles the server serves on VCLASS_DEBUG_ADDR.
	const debugAddr = "127.0.0.1:27745"
	srv := startMediaBinary(t, measuredMediaBinary, "127.0.0.1:0", loopbackConfig(27700, 27719, ""),
		"VCLASS_LIMIT_CONNECTIONS_PER_SECOND_PER_IP=0", "VCLASS_DEBUG_ADDR="+debugAddr)
	proxy := tcpproxy.Start(t, strings.TrimPrefix(srv.URL, "http://")) // severSocket guests only
	proxyWS := "ws://" + proxy.Addr() + "/ws"
	probe := mediaProbe(srv, debugAddr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const room = "soak"
	teacher := joinParticipant(t, ctx, srv.WS, room, "teacher", true)
	viewer := joinParticipant(t, ctx, srv.WS, room, "viewer", false)
	peers := func(n int) func() bool {
		return func() bool {
			body, err := probe.metrics()
			return err == nil && containsMetric(body, fmt.Sprintf("vclass_peers %d", n))
		}
	}

	var leaves [3]int
	cycle := func(i int) {
		leave, waitMedia, full := soakGuest(i)
		leaves[leave]++
		cctx, stop := context.WithTimeout(ctx, 30*time.Second)
		defer stop()
		url := srv.WS
		if leave == severSocket {
			url = proxyWS
		}
		name := fmt.Sprintf("guest%d", i)
		c, err := client.Dial(cctx, client.Options{URL: url, DisplayName: name, Sources: []string{"audio:mic", "video:cam"}})
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		defer c.Close()
		guest := &participant{c: c, received: map[string]*atomic.Int64{}}
		guest.track(c)
		if _, err := c.JoinRoom(cctx, room); err != nil {
			t.Fatalf("cycle %d: joinRoom: %v", i, err)
		}
		publishSynthetic(t, cctx, c, name)
		if waitMedia {
			waitFor(t, 15*time.Second, fmt.Sprintf("cycle %d: the viewer receiving %s's camera", i, name),
				func() bool { return viewer.count(c.PeerID+"/video:cam") > 0 })
		}
		if full {
			for _, w := range []struct {
				who *participant
				key string
			}{
				{viewer, c.PeerID + "/audio:mic"},
				{teacher, c.PeerID + "/video:cam"},
				{teacher, c.PeerID + "/audio:mic"},
				{guest, teacher.c.PeerID + "/video:cam"},
				{guest, teacher.c.PeerID + "/audio:mic"},
			} {
				waitFor(t, 15*time.Second, fmt.Sprintf("cycle %d: %s flowing", i, w.key), func() bool { return w.who.count(w.key) > 10 })
			}
		}
		switch leave {
		case leaveRoomThenClose:
			if err := c.LeaveRoom(cctx); err != nil {
				t.Fatalf("cycle %d: leaveRoom: %v", i, err)
			}
		case severSocket:
			proxy.Sever()
		}
		// c.Close (deferred) closes the socket and both transports.
	}

	start := time.Now()
	for i := range warm {
		cycle(i)
	}
	// The severed guest of the warm-up is kept for its 15 s resume window:
	// its leaving by timeout is part of the warm-up too.
	waitFor(t, 30*time.Second, "the warm-up's guests gone", peers(2))
	base := probe.settled(t)
	t.Logf("media: baseline after %d warm-up cycles (%v): %v", warm, time.Since(start).Round(time.Second), base)
	for i := warm; i < cycles; i++ {
		cycle(i)
		if (i+1)%max(1, cycles/10) == 0 {
			t.Logf("media: after cycle %d (%v): %v", i+1, time.Since(start).Round(time.Second), probe.read(t))
		}
	}
	t.Logf("media: %d cycles in %v (%d leaveRoom, %d close, %d severed)", cycles, time.Since(start).Round(time.Second), leaves[0], leaves[1], leaves[2])
	// The last severed guests leave when their resume window ends.
	probe.backTo(t, "media", base, 60*time.Second, peers(2))
}

// Recordings started, stopped and finished one after another, on a room
// with a publishing peer, leave vclass-recorder with the goroutines,
// descriptors and memory it had after a warm-up.
func TestSoakRecorderStartStop(t *testing.T) {
	parallel(t)
	cycles := soakCount(20, 200)
	warm := max(5, cycles/20) // each kind of recording at least once
	media := startMedia(t, loopbackConfig(27720, 27739, ""), "VCLASS_AUTH_SECRET="+testSecret, "VCLASS_LIMIT_CONNECTIONS_PER_SECOND_PER_IP=0")
	// user1 records plain files, user2 composes class.mp4 as well (ffmpeg).
	clients := `[{"Credentials": {"Username": "user1", "Password": "user1"}, "Host": "http://127.0.0.1", "Slots": 1,
	    "FfmpegConfig": {"StartDelay": "0", "Compose": false}},
	  {"Credentials": {"Username": "user2", "Password": "user2"}, "Host": "http://127.0.0.1", "Slots": 1,
	    "FfmpegConfig": {"StartDelay": "0", "CommandOutputOptions": "-pix_fmt yuv420p", "Compose": true}}]`
	cfg := strings.Replace(recorderConfig(clients), `"Credentials": {"Username": "admin"`,
		`"RateLimiting": {"RequestsPerSecondPerIp": 0},
    "Credentials": {"Username": "admin"`, 1)
	rec := startRecorderBinary(t, measuredRecorderBinary, nil, "", cfg, media)
	// The recorder serves no profiles, so nothing asks it to collect
	// garbage: its memory is measured as it comes back by itself.
	probe := soakProbe{pid: rec.cmd.Process.Pid, metrics: func() (string, error) { return httpText(rec.client, rec.URL+"/metrics") }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const room = "lesson"
	joinParticipant(t, ctx, media.WS, room, "Teacher", true)
	written := func() float64 {
		body, err := probe.metrics()
		if err != nil {
			t.Fatal(err)
		}
		return metricValue(t, body, "vclass_recorder_bytes_written_total")
	}

	var composed, kept int
	cycle := func(i int) {
		user, compose := "user1", i%10 == 4
		if compose {
			user = "user2"
			composed++
		}
		before := written()
		r := rec.start(t, user, user, room)
		rec.waitState(t, user, user, r.ID, "recording", 20*time.Second)
		waitFor(t, 15*time.Second, fmt.Sprintf("recording %d writing media", i), func() bool { return written() > before })
		if code := rec.call(t, "POST", "/api/v1/recordings/"+r.ID+"/stop", user, user, nil, nil); code != http.StatusAccepted {
			t.Fatalf("recording %d: stop: HTTP %d", i, code)
		}
		done := rec.waitState(t, user, user, r.ID, "done", 60*time.Second)
		var camera, composite bool
		for _, f := range done.Files {
			st, err := os.Stat(filepath.Join(rec.Dir, "records", r.ID, f.Name))
			if err != nil || st.Size() == 0 {
				t.Fatalf("recording %d: file %s: %v (size %d)", i, f.Name, err, f.Size)
			}
			camera = camera || f.Source == "camera"
			composite = composite || f.Source == "composite"
		}
		if !camera || compose && !composite || done.ComposeError != "" {
			t.Fatalf("recording %d: files %+v (compose error %q), want a camera file (and class.mp4 when composed)", i, done.Files, done.ComposeError)
		}
		// A portal downloads its recordings and deletes them, or keeps
		// them listed: half are kept (a finished recording once held its
		// whole session, some 0.5 MiB live, for as long as it was listed).
		if i%2 == 0 {
			kept++
			return
		}
		if code := rec.call(t, "DELETE", "/api/v1/recordings/"+r.ID, user, user, nil, nil); code != http.StatusNoContent {
			t.Fatalf("recording %d: delete: HTTP %d", i, code)
		}
	}

	start := time.Now()
	for i := range warm {
		cycle(i)
	}
	base := probe.settled(t)
	t.Logf("recorder: baseline after %d warm-up recordings (%v): %v", warm, time.Since(start).Round(time.Second), base)
	for i := warm; i < cycles; i++ {
		cycle(i)
		if (i+1)%max(1, cycles/10) == 0 {
			t.Logf("recorder: after recording %d (%v): %v", i+1, time.Since(start).Round(time.Second), probe.read(t))
		}
	}
	t.Logf("recorder: %d recordings in %v (%d composed, %d kept, the others deleted)", cycles, time.Since(start).Round(time.Second), composed, kept)
	probe.backTo(t, "recorder", base, 60*time.Second, func() bool { return true })
	t.Logf("the recorder's vclass-media at the end (not checked): %v", mediaProbe(media, "").read(t))
}
