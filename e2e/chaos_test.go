package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vclass/vclass/client"
	"github.com/vclass/vclass/cluster/redistest"
)

// The chaos test's ports, 30550-30599, fixed so that each process comes
// back where it was: node i's media on 30550+10i to +9 and its HTTP on
// 30580+i, Redis on 30583, the recorder's API on 30584. Below Linux's
// ephemeral ports (32768 on): in them, a connection elsewhere on the
// machine may hold a port while its process is down, and the restart
// fails to bind (seen in CI).
const (
	chaosMediaPorts   = 30550
	chaosHTTPPorts    = 30580
	chaosRedisPort    = 30583
	chaosRecorderPort = 30584
)

// Bounds of a chaos run: 3 to 6 kills within chaosWindow, each process
// back after chaosMinDown to chaosMaxDown.
const (
	chaosMinKills = 3
	chaosMaxKills = 6
	chaosWindow   = 60 * time.Second
	chaosMinDown  = 500 * time.Millisecond
	chaosMaxDown  = 4 * time.Second
)

// chaosSlots is the recorder client's slots: as many as the rooms recorded,
// so that a lease an ended recording kept shows as a refused start.
const chaosSlots = 2

// Three media nodes on Redis, a recorder sharing its slots through the same
// Redis, three classes of Go sessions publishing audio and video, two of
// them recorded. At random moments (VCLASS_CHAOS_SEED=N replays a run) a
// node, the recorder or Redis is killed with SIGKILL and started again on
// its ports and data a moment later. Afterwards every class is whole on one
// node with media flowing, every recording is done or interrupted with
// files ffprobe reads, and Redis keeps no lease or claim of what is gone.
// Not parallel: beside busy tests (soak, browsers recording) its
// race-instrumented sessions fall behind, and the delay reads as
// congestion that pauses their video (seen: 2 packets in 20 s).
func TestChaosKillsAndRestarts(t *testing.T) {
	seed := chaosSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed))
	w := &chaosWorld{t: t}
	for i := range 3 {
		w.nodes = append(w.nodes, &chaosNode{id: fmt.Sprintf("chaos-%c", 'a'+i), lo: chaosMediaPorts + 10*i,
			addr: fmt.Sprintf("127.0.0.1:%d", chaosHTTPPorts+i)})
	}
	plan := newChaosSchedule(rng, w.nodeIDs())
	t.Logf("chaos seed %d (VCLASS_CHAOS_SEED=%d runs it again):\n%s", seed, seed, plan)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	t.Cleanup(cancel)
	w.ctx = ctx

	w.redis = redistest.StartAt(t, chaosRedisPort)
	opts, _ := redis.ParseURL(w.redis.URL())
	w.rdb = redis.NewClient(opts)
	t.Cleanup(func() { w.rdb.Close() })
	for _, n := range w.nodes {
		n.env = append(nodeEnv(n.id, n.addr, w.redis.URL()), "VCLASS_AUTH_SECRET="+testSecret)
		n.start(t)
	}
	clusterSettled(t, w.redis.URL())
	w.startRecorder()
	w.joinClasses(rng)
	for _, c := range w.classes {
		if c.recorded {
			c.rec = w.rec.start(t, "user1", "user1", c.room).ID
			w.rec.waitState(t, "user1", "user1", c.rec, "recording", 30*time.Second)
		}
	}

	w.run(plan)
	back := time.Now()
	w.waitWhole(60 * time.Second)
	w.waitMedia(20 * time.Second)
	t.Logf("every class whole, media flowing, %v after the last restart", time.Since(back).Round(100*time.Millisecond))
	for _, c := range w.classes {
		var reconnects []int
		for _, p := range c.peers {
			reconnects = append(reconnects, p.reconnects())
		}
		t.Logf("%s on %s, its sessions reconnected %v times", c.room, c.node.id, reconnects)
	}
	w.checkRecordingsGoOn()
	// The class not recorded ends: its room closes 10 s after the last
	// participant left, and its claim goes (checked last, meanwhile the
	// recordings end).
	ended := w.classes[len(w.classes)-1]
	for _, p := range ended.peers {
		p.s.Close()
	}
	ended.closed = true
	w.stopRecordings()
	w.checkRecordings()
	w.checkRedis(25 * time.Second)
}

func chaosSeed(t *testing.T) uint64 {
	if v := os.Getenv("VCLASS_CHAOS_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("VCLASS_CHAOS_SEED=%q: %v", v, err)
		}
		return s
	}
	return uint64(time.Now().UnixNano())
}

// chaosKill is one SIGKILL of the schedule and the restart after it.
type chaosKill struct {
	target string        // a node's id, "recorder" or "redis"
	at     time.Duration // after the chaos began
	down   time.Duration // until the restart
}

type chaosSchedule []chaosKill

// newChaosSchedule draws 3 to 6 kills, at least one of a node, of the
// recorder and of Redis; a process is not killed again until it has been
// back for a second.
func newChaosSchedule(rng *rand.Rand, nodes []string) chaosSchedule {
	targets := []string{nodes[rng.IntN(len(nodes))], "recorder", "redis"}
	rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	all := append(slices.Clone(nodes), "recorder", "redis")
	for n := chaosMinKills + rng.IntN(chaosMaxKills-chaosMinKills+1); len(targets) < n; {
		targets = append(targets, all[rng.IntN(len(all))])
	}
	var s chaosSchedule
	for _, tg := range targets {
		at := 2*time.Second + time.Duration(rng.Int64N(int64(chaosWindow-8*time.Second)))
		down := chaosMinDown + time.Duration(rng.Int64N(int64(chaosMaxDown-chaosMinDown)))
		s = append(s, chaosKill{target: tg, at: at.Round(100 * time.Millisecond), down: down.Round(100 * time.Millisecond)})
	}
	sort.Slice(s, func(a, b int) bool { return s[a].at < s[b].at })
	backAt := map[string]time.Duration{}
	for i := range s {
		if up, ok := backAt[s[i].target]; ok && s[i].at < up+time.Second {
			s[i].at = up + time.Second
		}
		backAt[s[i].target] = s[i].at + s[i].down
	}
	sort.Slice(s, func(a, b int) bool { return s[a].at < s[b].at })
	return s
}

func (s chaosSchedule) String() string {
	var b strings.Builder
	for _, k := range s {
		fmt.Fprintf(&b, "  at %5.1fs kill %s, back %.1fs later\n", k.at.Seconds(), k.target, k.down.Seconds())
	}
	return b.String()
}

// chaosAction is a kill or a restart at a moment of the run.
type chaosAction struct {
	at      time.Duration
	target  string
	restart bool
}

// actions are the kills and restarts in time order.
func (s chaosSchedule) actions() []chaosAction {
	var out []chaosAction
	for _, k := range s {
		out = append(out, chaosAction{at: k.at, target: k.target}, chaosAction{at: k.at + k.down, target: k.target, restart: true})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].at < out[b].at })
	return out
}

// chaosWorld is everything a chaos run starts; only the test's goroutine
// touches it.
type chaosWorld struct {
	t       *testing.T
	ctx     context.Context
	redis   *redistest.Server
	rdb     *redis.Client
	nodes   []*chaosNode
	rec     *recorderServer
	recDir  string
	recCfg  string
	classes []*chaosClass
	// slotsRefused notes the first start refused for full slots while
	// fewer recordings were going on than the client has slots.
	slotsRefused bool
}

type chaosNode struct {
	id, addr string
	lo       int // media ports lo to lo+9
	env      []string
	srv      *mediaServer // the current process
}

// start runs the node (again). It is the binary without the race
// detector: three race-checked nodes on a loaded machine are slow enough
// that their own delays read as congestion, and the subscribers' videos
// are paused for bandwidth (the recorder and the clients keep it).
func (n *chaosNode) start(t *testing.T) {
	n.srv = startMediaBinary(t, measuredMediaBinary, n.addr, loopbackConfig(n.lo, n.lo+9, ""), n.env...)
}

func (n *chaosNode) ws() string { return "ws://" + n.addr + "/ws" }

// localPeers asks the node itself (not the room's node, as the portal API
// would) for the room's participants, and counts its recorders apart.
func (n *chaosNode) localPeers(room string) (names []string, recorders, code int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.addr+"/api/v1/rooms/"+room, nil)
	req.Header.Set("Authorization", "Bearer "+clusterAPIKey)
	req.Header.Set("X-Vclass-Forwarded", "1") // answered by this node alone
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, 0, err
	}
	defer res.Body.Close()
	var detail struct {
		PeerList []struct {
			DisplayName string `json:"displayName"`
			Role        string `json:"role"`
		} `json:"peerList"`
	}
	if res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(&detail); err != nil {
			return nil, 0, res.StatusCode, err
		}
	}
	for _, p := range detail.PeerList {
		if p.Role == "recorder" {
			recorders++
		} else {
			names = append(names, p.DisplayName)
		}
	}
	sort.Strings(names)
	return names, recorders, res.StatusCode, nil
}

type chaosClass struct {
	room     string
	recorded bool
	peers    []*sessionParticipant
	rec      string     // its recording going on now, "" for none
	node     *chaosNode // where it is whole again
	closed   bool       // its participants have left
}

func (c *chaosClass) names() []string {
	var out []string
	for _, p := range c.peers {
		out = append(out, p.name)
	}
	sort.Strings(out)
	return out
}

func (w *chaosWorld) nodeIDs() []string {
	var ids []string
	for _, n := range w.nodes {
		ids = append(ids, n.id)
	}
	return ids
}

func (w *chaosWorld) node(id string) *chaosNode {
	for _, n := range w.nodes {
		if n.id == id || n.ws() == id {
			return n
		}
	}
	return nil
}

// startRecorder starts the recorder (again) in its folder, on its port,
// with every node's URL and the slots in Redis.
func (w *chaosWorld) startRecorder() {
	if w.recDir == "" {
		w.recDir = w.t.TempDir()
		cfg := recorderConfig(oneClient(chaosSlots, false))
		for old, new := range map[string]string{
			`"Url": "https://127.0.0.1:0"`: fmt.Sprintf(`"Url": "https://127.0.0.1:%d"`, chaosRecorderPort),
			`"JoinTimeout": 8000`:          `"JoinTimeout": 30000`, // the default: outages here are short
			// The test is the portal of every class and polls from
			// 127.0.0.1 more often than one address may (docs/security.md).
			`"Credentials": {"Username": "admin"`: `"RateLimiting": {"RequestsPerSecondPerIp": 0}, "Credentials": {"Username": "admin"`,
		} {
			if !strings.Contains(cfg, old) {
				w.t.Fatalf("recorderConfig has no %s", old)
			}
			cfg = strings.Replace(cfg, old, new, 1)
		}
		w.recCfg = cfg
	}
	var urls []string
	for _, n := range w.nodes {
		urls = append(urls, n.ws())
	}
	w.rec = startRecorder(w.t, w.recDir, w.recCfg, w.nodes[0].srv,
		"VCLASS_MEDIA_URL="+strings.Join(urls, ","), "VCLASS_REDIS_URL="+w.redis.URL())
}

// joinClasses brings three classes of three sessions in, each session
// through a node drawn at random (the others its further ways in), and
// waits until each receives the others.
func (w *chaosWorld) joinClasses(rng *rand.Rand) {
	for i, room := range []string{"chaos-math", "chaos-art", "chaos-bio"} {
		c := &chaosClass{room: room, recorded: i < chaosSlots}
		for j := range 3 {
			entry := w.nodes[rng.IntN(len(w.nodes))]
			var more []string
			for _, n := range w.nodes {
				if n != entry {
					more = append(more, n.ws())
				}
			}
			name := fmt.Sprintf("%s-%d", strings.TrimPrefix(room, "chaos-"), j+1)
			// A small camera (96 kbit/s), whose keyframes have the start code
			// ffprobe looks for: on a loaded machine the subscribers' estimates
			// fall low, and larger videos are paused for bandwidth.
			tracks := func() []client.LocalTrack {
				return syntheticTracksOf(w.t, w.ctx, name, client.SyntheticVP8(15, 800, 30).WithSize(160, 120))
			}
			c.peers = append(c.peers, joinSessionPublishing(w.t, w.ctx, client.Options{URL: entry.ws(), DisplayName: name},
				client.SessionOptions{MoreURLs: more}, room, tracks))
		}
		w.classes = append(w.classes, c)
	}
	for _, c := range w.classes {
		receiving(w.t, 30*time.Second, "before the chaos", nil, c.peers...)
	}
}

// run carries the schedule out; between its steps it keeps the recorded
// classes recorded, as a portal would.
func (w *chaosWorld) run(plan chaosSchedule) {
	t := w.t
	began := time.Now()
	for _, a := range plan.actions() {
		for wait := time.Until(began.Add(a.at)); wait > 0; wait = time.Until(began.Add(a.at)) {
			w.portal()
			time.Sleep(min(wait, 250*time.Millisecond)) // the schedule's own pace
		}
		verb := "kill"
		if a.restart {
			verb = "restart"
		}
		t.Logf("%5.1fs: %s %s", time.Since(began).Seconds(), verb, a.target)
		switch {
		case a.target == "redis" && !a.restart:
			w.redis.Stop() // SIGKILL
		case a.target == "redis":
			w.redis.Restart(t)
		case a.target == "recorder" && !a.restart:
			w.rec.Kill()
		case a.target == "recorder":
			w.startRecorder()
			w.recorderRestarted()
		case !a.restart:
			w.node(a.target).srv.Kill()
		default:
			w.node(a.target).start(t)
		}
	}
	t.Logf("%5.1fs: the schedule is over, everything runs again", time.Since(began).Seconds())
}

// recorderRestarted checks that the recordings the killed recorder was
// making are interrupted now, and forgets them: the portal starts new ones.
func (w *chaosWorld) recorderRestarted() {
	for _, c := range w.classes {
		if c.rec == "" {
			continue
		}
		got := w.rec.get(w.t, "user1", "user1", c.rec)
		if got.State != "interrupted" {
			w.t.Errorf("recording %s of %s is %s (%s) after the recorder was killed and restarted, want interrupted", c.rec, c.room, got.State, got.Reason)
		}
		c.rec = ""
	}
}

// portal keeps a recording going for each recorded class: it notes
// recordings that ended by themselves and starts one where none runs.
func (w *chaosWorld) portal() {
	var list struct {
		Recordings []recording `json:"recordings"`
	}
	if _, err := w.rec.try("GET", "/api/v1/recordings", "user1", "user1", nil, &list); err != nil {
		return // the recorder is down
	}
	state := map[string]recording{}
	for _, r := range list.Recordings {
		state[r.ID] = r
	}
	active := 0
	for _, c := range w.classes {
		if c.rec == "" {
			continue
		}
		if r := state[c.rec]; r.State == "done" || r.State == "failed" || r.State == "interrupted" {
			// The media server or Redis being away for a few seconds does not
			// end a recording: it joins again (docs/recorder.md, Faults).
			w.t.Errorf("recording %s of %s ended by itself during the chaos: %s (%s)", c.rec, c.room, r.State, r.Reason)
			c.rec = ""
			continue
		}
		active++
	}
	for _, c := range w.classes {
		if !c.recorded || c.rec != "" {
			continue
		}
		var started recording
		code, err := w.rec.try("POST", "/api/v1/recordings", "user1", "user1", map[string]string{"room": c.room}, &started)
		switch {
		case err != nil:
			return
		case code == http.StatusCreated:
			w.t.Logf("recording %s of %s started", started.ID, c.room)
			c.rec = started.ID
			active++
		case code == http.StatusTooManyRequests && active < chaosSlots && !w.slotsRefused:
			w.slotsRefused = true
			w.t.Errorf("a recording of %s was refused for full slots while %d of %d were in use: slots of ended recordings are still held", c.room, active, chaosSlots)
		}
	}
}

// classProblems says what keeps a class from being whole: all its
// sessions on one node, that node's room holding each participant once
// and no more than one recorder (a killed recorder's peer is gone once
// its 15 s to resume are over), no other node holding the room, and Redis
// placing it there.
func (w *chaosWorld) classProblems(c *chaosClass) []string {
	var out []string
	at := map[string][]string{}
	for _, p := range c.peers {
		select {
		case <-p.s.Done():
			out = append(out, fmt.Sprintf("%s's session ended: %v", p.name, p.s.Err()))
			continue
		default:
		}
		n := w.node(p.s.Client().URL())
		if n == nil {
			out = append(out, fmt.Sprintf("%s is on %s, no node of the test", p.name, p.s.Client().URL()))
			continue
		}
		at[n.id] = append(at[n.id], p.name)
	}
	if len(at) != 1 {
		return append(out, fmt.Sprintf("%s: sessions on %d nodes: %v", c.room, len(at), at))
	}
	var owner *chaosNode
	for id := range at {
		owner = w.node(id)
	}
	for _, n := range w.nodes {
		names, recorders, code, err := n.localPeers(c.room)
		switch {
		case err != nil:
			out = append(out, fmt.Sprintf("%s: %s does not answer: %v", c.room, n.id, err))
		case n == owner && code != http.StatusOK:
			out = append(out, fmt.Sprintf("%s: not live on %s, where its sessions are (HTTP %d)", c.room, n.id, code))
		case n == owner && !slices.Equal(names, c.names()):
			out = append(out, fmt.Sprintf("%s: %s lists %v, want %v", c.room, n.id, names, c.names()))
		case n == owner && recorders > 1:
			out = append(out, fmt.Sprintf("%s: %d recorders in the room on %s", c.room, recorders, n.id))
		case n != owner && code != http.StatusNotFound:
			out = append(out, fmt.Sprintf("%s: %s holds a copy too (HTTP %d, %v)", c.room, n.id, code, names))
		}
	}
	claim, err := w.rdb.Get(w.ctx, "vclass:room:"+c.room).Result()
	if err != nil || claim != owner.id {
		out = append(out, fmt.Sprintf("%s: Redis places it on %q (%v), its sessions are on %s", c.room, claim, err, owner.id))
	}
	c.node = owner
	return out
}

// waitWhole waits until every class is whole.
func (w *chaosWorld) waitWhole(within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		var problems []string
		for _, c := range w.classes {
			problems = append(problems, w.classProblems(c)...)
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("classes not whole %v after the chaos:\n%s", within, strings.Join(problems, "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitMedia waits until, in every class, each session has received more
// packets of each other's microphone (25) and camera (10).
func (w *chaosWorld) waitMedia(within time.Duration) {
	from := map[*sessionParticipant]map[string]int64{}
	lagging := func() []string {
		var out []string
		for _, c := range w.classes {
			for _, p := range c.peers {
				if from[p] == nil {
					from[p] = map[string]int64{}
				}
				for _, o := range c.peers {
					for _, src := range []string{"audio:mic", "video:cam"} {
						if o == p {
							continue
						}
						key := o.peerID() + "/" + src
						n := p.count(key)
						base, seen := from[p][key]
						if !seen {
							from[p][key], base = n, n
						}
						if want := map[string]int64{"audio:mic": 25, "video:cam": 10}[src]; n < base+want {
							out = append(out, fmt.Sprintf("%s: %s has %d packets of %s's %s", c.room, p.name, n-base, o.name, src))
						}
					}
				}
			}
		}
		return out
	}
	deadline := time.Now().Add(within)
	for {
		l := lagging()
		if len(l) == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("media not flowing %v after the classes were whole:\n%s", within, strings.Join(l, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkRecordingsGoOn waits until each recorded class has its recording
// going on, holding a live lease in Redis and writing what the class
// sends now.
func (w *chaosWorld) checkRecordingsGoOn() {
	t := w.t
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range w.classes {
		for c.recorded && c.rec == "" && time.Now().Before(deadline) {
			w.portal()
			time.Sleep(250 * time.Millisecond)
		}
	}
	for _, c := range w.classes {
		if !c.recorded || c.rec == "" {
			continue
		}
		r := w.rec.waitState(t, "user1", "user1", c.rec, "recording", time.Until(deadline))
		bytes := func() int64 {
			var got struct {
				Bytes int64 `json:"bytes"`
			}
			w.rec.call(t, "GET", "/api/v1/recordings/"+r.ID, "user1", "user1", nil, &got)
			return got.Bytes
		}
		first := bytes()
		waitFor(t, 15*time.Second, "recording "+r.ID+" of "+c.room+" writing again", func() bool { return bytes() > first+50_000 })
		waitFor(t, 10*time.Second, "recording "+r.ID+" holding a live slot lease", func() bool {
			score, err := w.rdb.ZScore(w.ctx, "vclass:slots:user1", r.ID).Result()
			return err == nil && int64(score) > time.Now().UnixMilli()
		})
	}
}

// stopRecordings stops every recording going on and waits until it is done.
func (w *chaosWorld) stopRecordings() {
	for _, c := range w.classes {
		if c.rec == "" {
			continue
		}
		w.rec.call(w.t, "POST", "/api/v1/recordings/"+c.rec+"/stop", "user1", "user1", nil, nil)
	}
	for _, c := range w.classes {
		if c.rec != "" {
			w.rec.waitState(w.t, "user1", "user1", c.rec, "done", 30*time.Second)
		}
	}
}

// checkRecordings checks every recording the recorder knows: done or
// interrupted, each media file read by ffprobe without a complaint and
// lasting some time.
func (w *chaosWorld) checkRecordings() {
	t := w.t
	var list struct {
		Recordings []recording `json:"recordings"`
	}
	w.rec.call(t, "GET", "/api/v1/recordings", "user1", "user1", nil, &list)
	files := 0
	for _, r := range list.Recordings {
		if r.State != "done" && r.State != "interrupted" {
			t.Errorf("recording %s of %s is %s (%s), want done or interrupted", r.ID, r.Room, r.State, r.Reason)
		}
		for _, f := range r.Files {
			if ext := filepath.Ext(f.Name); ext != ".webm" && ext != ".mkv" {
				continue
			}
			files++
			path := filepath.Join(w.rec.Dir, "records", r.ID, f.Name)
			out, err := exec.Command("ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path).CombinedOutput()
			d, perr := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
			if err != nil || perr != nil || d <= 0 {
				t.Errorf("%s recording %s, file %s (%d bytes): ffprobe says %q (%v)", r.State, r.ID, f.Name, f.Size, out, err)
			}
		}
		t.Logf("recording %s of %s: %s (%s), %d files", r.ID, r.Room, r.State, r.Reason, len(r.Files))
	}
	if files == 0 {
		t.Error("no recording has a media file")
	}
}

// checkRedis waits until Redis holds only what is live: the three nodes,
// each class's claim by its node (none for the class that ended, whose
// room no node holds), no slot lease (no recording goes on), and the
// cluster not settling.
func (w *chaosWorld) checkRedis(within time.Duration) {
	deadline := time.Now().Add(within)
	for {
		problems := w.redisProblems()
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			w.t.Errorf("Redis %v after the recordings ended:\n%s", within, strings.Join(problems, "\n"))
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (w *chaosWorld) redisProblems() []string {
	ctx := w.ctx
	var keys []string
	iter := w.rdb.Scan(ctx, 0, "vclass:*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return []string{"scan: " + err.Error()}
	}
	sort.Strings(keys)
	now := time.Now().UnixMilli()
	var out []string
	for _, c := range w.classes {
		if !c.closed {
			continue
		}
		for _, n := range w.nodes {
			if _, _, code, err := n.localPeers(c.room); err != nil || code != http.StatusNotFound {
				out = append(out, fmt.Sprintf("%s ended, but %s still holds its room (HTTP %d, %v)", c.room, n.id, code, err))
			}
		}
	}
	zset := func(key string) []redis.Z {
		z, err := w.rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
		if err != nil {
			out = append(out, key+": "+err.Error())
		}
		return z
	}
	for _, key := range keys {
		switch {
		case key == "vclass:nodes":
			for _, z := range zset(key) {
				if id, _ := z.Member.(string); w.node(id) == nil || int64(z.Score) <= now {
					out = append(out, fmt.Sprintf("%s holds %v until %d (now %d)", key, z.Member, int64(z.Score), now))
				}
			}
		case strings.HasPrefix(key, "vclass:node:"):
			if w.node(strings.TrimPrefix(key, "vclass:node:")) == nil {
				out = append(out, key+": no such node")
			}
		case strings.HasPrefix(key, "vclass:room:"):
			room := strings.TrimPrefix(key, "vclass:room:")
			owner, _ := w.rdb.Get(ctx, key).Result()
			i := slices.IndexFunc(w.classes, func(c *chaosClass) bool { return c.room == room })
			if i < 0 || w.classes[i].closed || w.classes[i].node == nil || w.classes[i].node.id != owner {
				out = append(out, fmt.Sprintf("%s: claimed by %s, where the room is not", key, owner))
			}
		case strings.HasPrefix(key, "vclass:slots:"):
			for _, z := range zset(key) {
				out = append(out, fmt.Sprintf("%s: lease of recording %v, which has ended (lease end %+.1fs from now)", key, z.Member, float64(int64(z.Score)-now)/1000))
			}
		case key == "vclass:alive":
		case key == "vclass:settling":
			out = append(out, key+": the cluster is still settling")
		default:
			out = append(out, key+": unknown key")
		}
	}
	return out
}
