package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/go-redis/v9"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/client"
	"github.com/vclass/vclass/cluster/redistest"
	"github.com/vclass/vclass/internal/tcpproxy"
)

// sessionParticipant is a client.Session that publishes synthetic media
// and counts what it receives, and remembers where it is now.
type sessionParticipant struct {
	*participant
	s      *client.Session
	name   string
	mu     sync.Mutex
	events []client.SessionEvent
}

func joinSession(t *testing.T, ctx context.Context, url, room, name string, more ...string) *sessionParticipant {
	t.Helper()
	return joinSessionWith(t, ctx, client.Options{URL: url, DisplayName: name}, client.SessionOptions{MoreURLs: more}, room)
}

// joinSessionWith joins with the given options (sources, a 1 s keepalive
// and the synthetic tracks added).
func joinSessionWith(t *testing.T, ctx context.Context, opts client.Options, so client.SessionOptions, room string) *sessionParticipant {
	t.Helper()
	return joinSessionPublishing(t, ctx, opts, so, room, func() []client.LocalTrack { return syntheticTracks(t, ctx, opts.DisplayName) })
}

// joinSessionPublishing is joinSessionWith publishing the tracks made by
// tracks once the session has joined.
func joinSessionPublishing(t *testing.T, ctx context.Context, opts client.Options, so client.SessionOptions, room string, tracks func() []client.LocalTrack) *sessionParticipant {
	t.Helper()
	name := opts.DisplayName
	p := &sessionParticipant{participant: &participant{received: map[string]*atomic.Int64{}}, name: name}
	opts.Sources = []string{"audio:mic", "video:cam"}
	p.s = client.NewSession(opts, room)
	p.s.OnTrack(p.onTrack)
	p.s.OnStateChange(func(ev client.SessionEvent) {
		p.mu.Lock()
		p.events = append(p.events, ev)
		p.mu.Unlock()
	})
	so.Keepalive = time.Second
	if _, err := p.s.Join(ctx, so); err != nil {
		t.Fatalf("%s joining %s via %s: %v", name, room, opts.URL, err)
	}
	t.Cleanup(p.s.Close)
	if _, err := p.s.Publish(ctx, tracks()...); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *sessionParticipant) peerID() string { return p.s.Client().PeerID }

func (p *sessionParticipant) reconnects() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, ev := range p.events {
		if ev.State == "reconnected" {
			n++
		}
	}
	return n
}

// tracksNow notes each participant's current received tracks.
func tracksNow(ps ...*sessionParticipant) map[*sessionParticipant]map[string]*atomic.Int64 {
	m := map[*sessionParticipant]map[string]*atomic.Int64{}
	for _, p := range ps {
		p.participant.mu.Lock()
		m[p] = maps.Clone(p.received)
		p.participant.mu.Unlock()
	}
	return m
}

// receiving waits until each participant gets more than 20 packets of
// every other's camera on a track that came after before was noted.
func receiving(t *testing.T, within time.Duration, what string, before map[*sessionParticipant]map[string]*atomic.Int64, ps ...*sessionParticipant) {
	t.Helper()
	for _, p := range ps {
		for _, o := range ps {
			if p == o {
				continue
			}
			waitFor(t, within, p.name+" receiving "+o.name+" "+what, func() bool {
				key := o.peerID() + "/video:cam"
				p.participant.mu.Lock()
				n := p.received[key]
				p.participant.mu.Unlock()
				return n != nil && n != before[p][key] && n.Load() > 20
			})
		}
	}
}

// Go clients reconnect on their own: when the node holding their room is
// killed, they are back in the room on the other node, receiving each
// other, within 10 s. Ann's first ticket has expired by then: her session
// asks for a fresh one.
func TestGoSessionsFollowTheirRoomToALiveNode(t *testing.T) {
	parallelIdle(t)
	const secret = "0123456789abcdef0123456789abcdef"
	r := redistest.Start(t)
	a := startNode(t, "node-a", 27360, r.URL(), "VCLASS_AUTH_SECRET="+secret)
	b := startNode(t, "node-b", 27370, r.URL(), "VCLASS_AUTH_SECRET="+secret)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	mint := func(expires time.Time) string {
		tk, err := auth.Mint(secret, auth.Claims{Room: "history", Name: "Ann", Role: auth.RoleNormal,
			RegisteredClaims: jwt.RegisteredClaims{Subject: "u-ann"}}, expires.Add(-time.Hour), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	var fresh atomic.Int32
	// The first ticket expired 2 s ago: the server's 5 s of leeway for
	// clocks admits it for 3 s more, long enough to join.
	firstExpires := time.Now().Add(-2 * time.Second)

	// Ann comes in at a, which takes the new room; Bob comes in at b and
	// is sent to a. Each knows the other node as a second way in.
	ann := joinSessionWith(t, ctx, client.Options{URL: a.WS, DisplayName: "Ann", Ticket: mint(firstExpires)},
		client.SessionOptions{MoreURLs: []string{b.WS}, Ticket: func(context.Context) (string, error) {
			fresh.Add(1)
			return mint(time.Now().Add(time.Hour)), nil
		}}, "history")
	bob := joinSession(t, ctx, b.WS, "history", "Bob", a.WS)
	if got := bob.s.Client().URL(); got != a.WS {
		t.Fatalf("Bob is on %s, want a (%s), which holds the room", got, a.WS)
	}
	receiving(t, 15*time.Second, "on a", nil, ann, bob)
	time.Sleep(time.Until(firstExpires.Add(6 * time.Second))) // leeway and a second past it

	before := tracksNow(ann, bob)
	killed := time.Now()
	_ = a.cmd.Process.Kill()
	<-a.done
	receiving(t, 10*time.Second, "again on b", before, ann, bob)
	t.Logf("both receiving again %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	for _, p := range []*sessionParticipant{ann, bob} {
		if got := p.s.Client().URL(); got != b.WS {
			t.Errorf("%s is on %s after the kill, want b (%s)", p.name, got, b.WS)
		}
		if n := p.reconnects(); n != 1 {
			t.Errorf("%s reconnected %d times, want 1", p.name, n)
		}
	}
	if fresh.Load() == 0 {
		t.Errorf("Ann's session reconnected without asking for a fresh ticket")
	}
}

// A session whose connection drops while its node lives (a network
// change) takes its old peer over and leaves with it before entering
// again: the room never shows it twice, and media flows again. A kicked
// session ends instead.
func TestGoSessionReconnectsAfterConnectionLoss(t *testing.T) {
	srv := startMedia(t, strings.Replace(loopbackConfig(27380, 27389, ""), `"AllowEmptyTickets": true`,
		`"AllowEmptyTickets": true, "ApiKey": "`+apiKey+`"`, 1))
	proxy := tcpproxy.Start(t, srv.URL[len("http://"):])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ann := joinSession(t, ctx, "ws://"+proxy.Addr()+"/ws", "biology", "Ann")
	bob := joinSession(t, ctx, srv.WS, "biology", "Bob")
	receiving(t, 15*time.Second, "before the drop", nil, ann, bob)

	// Dan, through the same proxy, closes his session when it loses its
	// connection, from its own callback.
	dan := joinSession(t, ctx, "ws://"+proxy.Addr()+"/ws", "biology", "Dan")
	dan.s.OnStateChange(func(ev client.SessionEvent) {
		if ev.State == "reconnecting" {
			dan.s.Close()
		}
	})

	before := tracksNow(ann, bob)
	proxy.Sever()
	select {
	case <-dan.s.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Dan's session, closed from its callback, did not end")
	}
	if !errors.Is(dan.s.Err(), client.ErrClosed) {
		t.Errorf("Dan's session ended with %v, want ErrClosed", dan.s.Err())
	}
	waitFor(t, 10*time.Second, "Ann reconnected", func() bool { return ann.reconnects() == 1 })
	receiving(t, 10*time.Second, "after the drop", before, ann, bob)
	// A newcomer sees Ann once: her old peer left when she came back.
	cid, peers, err := client.DialRoom(ctx, client.Options{URL: srv.WS, DisplayName: "Cid"}, "biology", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cid.Close()
	// (Dan's peer is kept for its 15 s of resume window: his session
	// ended while its connection was already gone.)
	names := map[string]int{}
	for _, p := range peers {
		names[p.DisplayName]++
	}
	if names["Ann"] != 1 || names["Bob"] != 1 {
		t.Errorf("a newcomer sees %v, want Ann once and Bob", names)
	}
	if bob.reconnects() != 0 {
		t.Errorf("Bob reconnected %d times, want 0", bob.reconnects())
	}

	// The portal kicks Bob: his session ends and does not come back.
	req, _ := http.NewRequest("DELETE", srv.URL+"/api/v1/rooms/biology/peers/"+bob.peerID(), nil)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("kick: HTTP %d", res.StatusCode)
	}
	select {
	case <-bob.s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Bob's session goes on after a kick")
	}
	if err := bob.s.Err(); err == nil || !strings.Contains(err.Error(), "kicked") {
		t.Errorf("Bob's session ended with %v, want the kick named", err)
	}
	if bob.reconnects() != 0 {
		t.Errorf("a kicked session reconnected")
	}
}

// In an Invite room an invitation is good for one producer: after a
// reconnect the session's tracks are refused. The session goes on (and
// says why), and publishes again once invited again.
func TestGoSessionGoesOnWhenRepublishIsRefused(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	cfg := strings.Replace(loopbackConfig(27450, 27459, ""), `"ServeMode": "Open"`, `"ServeMode": "Invite"`, 1)
	srv := startMedia(t, cfg, "VCLASS_AUTH_SECRET="+secret)
	proxy := tcpproxy.Start(t, srv.URL[len("http://"):])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ticket, err := auth.Mint(secret, auth.Claims{Room: "invited", Name: "Tom", Role: auth.RoleAdmin,
		RegisteredClaims: jwt.RegisteredClaims{Subject: "u-tom"}}, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tom := dialRaw(t, srv)
	tom.expectOK(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "x", "ticket": "` + ticket + `"}}`)
	tom.expectOK(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "invited"}}`)
	eve := &sessionParticipant{participant: &participant{received: map[string]*atomic.Int64{}}, name: "Eve"}
	eve.s = client.NewSession(client.Options{URL: "ws://" + proxy.Addr() + "/ws", DisplayName: "Eve", Sources: []string{"audio:mic", "video:cam"}}, "invited")
	var mu sync.Mutex
	var events []client.SessionEvent
	eve.s.OnStateChange(func(ev client.SessionEvent) {
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	if _, err := eve.s.Join(ctx, client.SessionOptions{Keepalive: time.Second}); err != nil {
		t.Fatal(err)
	}
	defer eve.s.Close()
	inviteEve := func(id int, sources string) {
		tom.expectOK(fmt.Sprintf(`{"request": true, "id": %d, "method": "invite", "data": {"peerId": %q, "sources": [%s]}}`,
			id, eve.peerID(), sources))
	}
	inviteEve(3, `"audio:mic", "video:cam"`)
	tracks := syntheticTracks(t, ctx, "Eve")
	if _, err := eve.s.Publish(ctx, tracks...); err != nil {
		t.Fatalf("publishing when invited: %v", err)
	}

	proxy.Sever()
	var back client.SessionEvent
	waitFor(t, 10*time.Second, "Eve reconnected", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range events {
			if ev.State == "reconnected" {
				back = ev
				return true
			}
		}
		return false
	})
	var se *client.ServerError
	if !errors.As(back.Err, &se) || se.Code != "sourceNotAllowed" {
		t.Errorf("reconnected with republish error %v, want sourceNotAllowed", back.Err)
	}
	select {
	case <-eve.s.Done():
		t.Fatalf("the session ended: %v", eve.s.Err())
	default:
	}
	inviteEve(4, `"audio:mic"`)
	if _, err := eve.s.Publish(ctx, tracks[1]); err != nil {
		t.Errorf("publishing the microphone when invited again: %v", err)
	}
	if err := eve.s.Unpublish(ctx, "audio:mic"); err != nil {
		t.Errorf("unpublishing the microphone: %v", err)
	}
	if got := tom.nextNotification("producerClosed"); !strings.Contains(string(got), eve.peerID()) {
		t.Errorf("Tom was told %s, want Eve's microphone closed", got)
	}
}

// A session that joins while the cluster settles is refused with
// clusterUnavailable and tries again until the room can be placed.
func TestGoSessionJoinWaitsForASettlingCluster(t *testing.T) {
	parallelIdle(t)
	r := redistest.Start(t)
	n := startNode(t, "solo", 27460, r.URL())
	opts, _ := redis.ParseURL(r.URL())
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Set(context.Background(), "vclass:settling", "e2e", 2*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := client.NewSession(client.Options{URL: n.WS, DisplayName: "Una"}, "settling")
	defer s.Close()
	if _, err := s.Join(ctx, client.SessionOptions{}); err != nil {
		t.Fatalf("Join while the cluster settles: %v", err)
	}
	if _, m := n.get(t, "/metrics"); !regexp.MustCompile(`vclass_signaling_requests_total\{code="clusterUnavailable",method="joinRoom"\} [1-9]`).MatchString(m) {
		t.Error("the join was never refused: the test did not meet the settling cluster")
	}
}
