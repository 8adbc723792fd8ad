package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vclass/vclass/client"
	"github.com/vclass/vclass/cluster/redistest"
	"github.com/vclass/vclass/webhook"
)

// freeAddr is a loopback address with a port free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// The kernel may give a port it gave before, once closed: a port
		// handed out earlier may not be listened on yet (CI once gave
		// nginx's port to a media node too).
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
	t.Fatal("no free port that was not handed out already")
	return ""
}

// handedOut is every address freeAddr gave.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// startNode runs a media node of a cluster on Redis r.
// It returns once the cluster has settled: a new cluster places no room
// for its first 3 s (docs/deploy.md).
func startNode(t *testing.T, id string, lo int, redisURL string, env ...string) *mediaServer {
	t.Helper()
	addr := freeAddr(t)
	n := startMediaAt(t, addr, loopbackConfig(lo, lo+9, ""), append(nodeEnv(id, addr, redisURL), env...)...)
	clusterSettled(t, redisURL)
	return n
}

// nodeEnv is the environment of cluster node id serving HTTP on addr.
func nodeEnv(id, addr, redisURL string) []string {
	return []string{"VCLASS_REDIS_URL=" + redisURL, "VCLASS_NODE_ID=" + id, "VCLASS_PUBLIC_URL=ws://" + addr + "/ws",
		"VCLASS_INTERNAL_URL=http://" + addr, "VCLASS_API_KEY=" + clusterAPIKey}
}

// clusterSettled waits until the cluster on redisURL places rooms: its
// settling flag (package cluster's key) is gone.
func clusterSettled(t *testing.T, redisURL string) {
	t.Helper()
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	waitFor(t, 10*time.Second, "the cluster to settle", func() bool {
		n, err := rdb.Exists(context.Background(), "vclass:settling").Result()
		return err == nil && n == 0
	})
}

const clusterAPIKey = "e2e-cluster-api-key-0123456789abcdef"

// nodeAPI makes a portal API request to a node and decodes the answer.
func nodeAPI(t *testing.T, srv *mediaServer, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+clusterAPIKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil {
		_ = json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode
}

// Two nodes share rooms through Redis: a client arriving at the node
// that does not hold the room is sent to the one that does, and the two
// clients see each other's media. With Redis down, joins fail with
// clusterUnavailable while the running room goes on; with Redis back,
// joins work again.
func TestClusterSendsClientsToTheRoomsNode(t *testing.T) {
	parallelIdle(t)
	r := redistest.StartAt(t, 27751) // restarted: a fixed port below the ephemeral range
	a := startNode(t, "node-a", 27300, r.URL())
	b := startNode(t, "node-b", 27310, r.URL())
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Ann arrives at b: the room is new, b holds it (no redirect).
	ann := joinVia(t, ctx, b.WS, "physics", "Ann")
	// Bob arrives at a: sent to b.
	bob := joinVia(t, ctx, a.WS, "physics", "Bob")
	if bob.url != b.WS {
		t.Fatalf("Bob ended at %s, want b (%s)", bob.url, b.WS)
	}
	for _, p := range []*participant{ann.p, bob.p} {
		publishSynthetic(t, ctx, p.c, p.c.PeerID)
	}
	waitFor(t, 15*time.Second, "Bob receiving Ann's video", func() bool { return bob.p.count(ann.p.c.PeerID+"/video:cam") > 20 })
	waitFor(t, 15*time.Second, "Ann receiving Bob's video", func() bool { return ann.p.count(bob.p.c.PeerID+"/video:cam") > 20 })

	// The portal API answers for every node at any node.
	if code := nodeAPI(t, a, "POST", "/api/v1/rooms", `{"id": "geo", "serveMode": "Pull"}`, nil); code != http.StatusCreated {
		t.Fatalf("creating geo through a: HTTP %d", code)
	}
	for _, n := range []*mediaServer{a, b} {
		var list struct {
			Rooms []struct {
				ID    string `json:"id"`
				Peers int    `json:"peers"`
			} `json:"rooms"`
		}
		nodeAPI(t, n, "GET", "/api/v1/rooms", "", &list)
		if len(list.Rooms) != 2 || list.Rooms[0].ID != "geo" || list.Rooms[1].ID != "physics" || list.Rooms[1].Peers != 2 {
			t.Errorf("rooms listed by %s: %+v, want geo and physics with 2 peers", n.URL, list.Rooms)
		}
	}
	var detail struct {
		PeerList []struct {
			DisplayName string `json:"displayName"`
		} `json:"peerList"`
	}
	if code := nodeAPI(t, a, "GET", "/api/v1/rooms/physics", "", &detail); code != 200 || len(detail.PeerList) != 2 {
		t.Errorf("physics (on b) read through a: HTTP %d %+v", code, detail)
	}
	if code := nodeAPI(t, a, "DELETE", "/api/v1/rooms/geo", "", nil); code != http.StatusNoContent {
		t.Errorf("closing geo through a: HTTP %d", code)
	}

	// Redis goes away: the room goes on, new joins are refused with a clear error.
	r.Stop()
	for _, n := range []*mediaServer{a, b} {
		waitFor(t, 5*time.Second, "a heartbeat to notice Redis is gone", func() bool {
			return strings.Contains(n.Log(), "Redis unreachable")
		})
	}
	before := bob.p.count(ann.p.c.PeerID + "/video:cam")
	_, _, err := client.DialRoom(ctx, client.Options{URL: a.WS, DisplayName: "Cid"}, "chemistry", nil)
	var se *client.ServerError
	if !errors.As(err, &se) || se.Code != "clusterUnavailable" {
		t.Fatalf("join with Redis down: %v, want clusterUnavailable", err)
	}
	waitFor(t, 5*time.Second, "media still flowing with Redis down", func() bool {
		return bob.p.count(ann.p.c.PeerID+"/video:cam") > before+30
	})

	// Redis is back: joins work again, and the running room is still b's.
	// Each node says so once at start and once on coming back; b's
	// heartbeat has then claimed its live room again.
	joinedCluster := func(n *mediaServer) int { return strings.Count(n.Log(), `msg="in the cluster"`) }
	r.Restart(t)
	for _, n := range []*mediaServer{a, b} {
		waitFor(t, 5*time.Second, "the nodes back in the cluster", func() bool { return joinedCluster(n) >= 2 })
	}
	// It came back empty: until every node has claimed its rooms again,
	// joins are refused with the same clear error (no room starts twice).
	var cid *client.Client
	waitFor(t, 10*time.Second, "a join to be accepted after Redis came back", func() bool {
		c, _, err := client.DialRoom(ctx, client.Options{URL: a.WS, DisplayName: "Cid"}, "physics", nil)
		if err != nil && (!errors.As(err, &se) || se.Code != "clusterUnavailable") {
			t.Fatalf("join after Redis came back: %v, want success or clusterUnavailable", err)
		}
		cid = c
		return err == nil
	})
	defer cid.Close()
	if cid.URL() != b.WS {
		t.Errorf("after Redis came back Cid joined physics at %s, want b (%s), where it runs", cid.URL(), b.WS)
	}
	if !strings.Contains(a.Log()+b.Log(), "no new rooms while every node claims its rooms again") {
		t.Errorf("no node logged that the cluster settles after Redis came back empty")
	}
}

type joined struct {
	p   *participant
	url string
}

// joinVia joins room starting at url, following redirects, and counts
// what it receives.
func joinVia(t *testing.T, ctx context.Context, url, room, name string) joined {
	t.Helper()
	p := &participant{received: map[string]*atomic.Int64{}}
	var at string
	c, _, err := client.DialRoom(ctx, client.Options{URL: url, DisplayName: name, Sources: []string{"audio:mic", "video:cam"}}, room,
		func(c *client.Client) { p.track(c) })
	if err != nil {
		t.Fatalf("%s joining %s via %s: %v", name, room, url, err)
	}
	at = c.URL()
	t.Cleanup(c.Close)
	p.c = c
	return joined{p: p, url: at}
}

// Two recorders on one Redis share a client's slots: with Slots 3, a
// fourth recording is refused on either, and a stop on one frees a slot
// for the other.
func TestRecordersShareSlots(t *testing.T) {
	parallelIdle(t)
	r := redistest.Start(t)
	media := startMedia(t, loopbackConfig(27320, 27329, ""), "VCLASS_AUTH_SECRET="+testSecret)
	ctx := ctx30(t)
	for _, room := range []string{"s1", "s2", "s3", "s4", "s5"} {
		joinParticipant(t, ctx, media.WS, room, "T-"+room, false)
	}
	cfg := recorderConfig(oneClient(3, false))
	recA := startRecorder(t, "", cfg, media, "VCLASS_REDIS_URL="+r.URL())
	recB := startRecorder(t, "", cfg, media, "VCLASS_REDIS_URL="+r.URL())
	r1 := recA.start(t, "user1", "user1", "s1")
	recA.start(t, "user1", "user1", "s2")
	recB.start(t, "user1", "user1", "s3")
	for _, rec := range []*recorderServer{recA, recB} {
		var full struct {
			Error struct {
				Code   string   `json:"code"`
				Active []string `json:"active"`
			} `json:"error"`
		}
		if code := rec.call(t, "POST", "/api/v1/recordings", "user1", "user1", map[string]string{"room": "s4"}, &full); code != 429 ||
			full.Error.Code != "slotsFull" || len(full.Error.Active) != 3 {
			t.Fatalf("a fourth recording: HTTP %d %+v, want 429 naming the three across both recorders", code, full)
		}
	}
	recA.waitState(t, "user1", "user1", r1.ID, "recording", 15*time.Second)
	recA.call(t, "POST", "/api/v1/recordings/"+r1.ID+"/stop", "user1", "user1", nil, nil)
	recA.waitState(t, "user1", "user1", r1.ID, "done", 30*time.Second)
	recB.start(t, "user1", "user1", "s4")
	var full struct{}
	if code := recB.call(t, "POST", "/api/v1/recordings", "user1", "user1", map[string]string{"room": "s5"}, &full); code != 429 {
		t.Errorf("after the freed slot was taken again: HTTP %d, want 429", code)
	}
}

// A recorder given several media URLs joins through the first that
// answers.
func TestRecorderTriesEachMediaURL(t *testing.T) {
	parallel(t)
	media := startMedia(t, loopbackConfig(27350, 27359, ""), "VCLASS_AUTH_SECRET="+testSecret)
	joinParticipant(t, ctx30(t), media.WS, "failover", "Tia", true)
	rec := startRecorder(t, "", recorderConfig(oneClient(1, false)), media, "VCLASS_MEDIA_URL=ws://127.0.0.1:9/ws,"+media.WS)
	job := rec.start(t, "user1", "user1", "failover")
	rec.waitState(t, "user1", "user1", job.ID, "recording", 15*time.Second)
}

// A recorder given every node's URL enters the room's node through its
// own URL for it, not through the public URL a node sends it to (which the
// inside network may not reach: here it takes connections and never
// answers, as a name that resolves to nowhere useful would).
func TestRecorderEntersTheRoomsNodeDirectly(t *testing.T) {
	parallel(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	go func() {
		var held []net.Conn // open, unanswered, until the test ends
		for {
			c, err := silent.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	r := redistest.Start(t)
	a := startNode(t, "node-a", 27280, r.URL(), "VCLASS_AUTH_SECRET="+testSecret)
	b := startNode(t, "node-b", 27290, r.URL(), "VCLASS_AUTH_SECRET="+testSecret, "VCLASS_PUBLIC_URL=ws://"+silent.Addr().String()+"/ws")
	joinParticipant(t, ctx30(t), b.WS, "direct", "Uma", true) // the room is on b
	rec := startRecorder(t, "", recorderConfig(oneClient(1, false)), a, "VCLASS_MEDIA_URL="+a.WS+","+b.WS)
	job := rec.start(t, "user1", "user1", "direct")
	rec.waitState(t, "user1", "user1", job.ID, "recording", 5*time.Second)
}

// Webhooks are sent once, by the node the room lives on: two nodes share
// a receiver, two clients come in at different nodes (one is sent on),
// and the portal hears of one room and two peers.
func TestClusterWebhooksOnce(t *testing.T) {
	parallelIdle(t)
	const secret = "webhook-secret-for-tests"
	var mu sync.Mutex
	var got []webhook.Event
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e webhook.Event
		_ = json.NewDecoder(r.Body).Decode(&e)
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	}))
	defer receiver.Close()
	r := redistest.Start(t)
	hooks := []string{"VCLASS_WEBHOOK_URL=" + receiver.URL, "VCLASS_WEBHOOK_SECRET=" + secret}
	a := startNode(t, "node-a", 27420, r.URL(), hooks...)
	b := startNode(t, "node-b", 27430, r.URL(), hooks...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	joinVia(t, ctx, a.WS, "music", "Ann")
	bob := joinVia(t, ctx, b.WS, "music", "Bob")
	if bob.url != a.WS {
		t.Fatalf("Bob is on %s, want a", bob.url)
	}
	count := func(kind string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, e := range got {
			if e.Event == kind && e.Room == "music" {
				n++
			}
		}
		return n
	}
	waitFor(t, 5*time.Second, "two peerJoined events", func() bool { return count("peerJoined") >= 2 })
	time.Sleep(500 * time.Millisecond) // room for a duplicate to arrive
	if rs, pj := count("roomStarted"), count("peerJoined"); rs != 1 || pj != 2 {
		mu.Lock()
		t.Errorf("roomStarted %d, peerJoined %d, want 1 and 2: %+v", rs, pj, got)
		mu.Unlock()
	}
}
