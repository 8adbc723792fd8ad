package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vclass/vclass/cluster/redistest"
	"github.com/vclass/vclass/internal/tcpproxy"
)

// state is a node's load and rooms, as a test sets them.
type state struct {
	mu    sync.Mutex
	load  int
	rooms []string
}

func (s *state) set(load int, rooms ...string) {
	s.mu.Lock()
	s.load, s.rooms = load, rooms
	s.mu.Unlock()
}

func newNode(t *testing.T, r *redistest.Server, id string, st *state) *Node {
	t.Helper()
	return newNodeAt(t, r.URL(), id, st, 100*time.Millisecond)
}

func newNodeAt(t *testing.T, url, id string, st *state, beat time.Duration) *Node {
	t.Helper()
	n, err := New(Params{RedisURL: url, NodeID: id, PublicURL: "ws://" + id + "/ws", Heartbeat: beat,
		Load: func() int {
			st.mu.Lock()
			defer st.mu.Unlock()
			return st.load
		},
		Rooms: func() []string {
			st.mu.Lock()
			defer st.mu.Unlock()
			return append([]string(nil), st.rooms...)
		}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// settled waits out the settling of a new cluster (or one whose Redis lost
// its data): no rooms are placed meanwhile.
func settled(t *testing.T, n *Node) {
	t.Helper()
	eventually(t, "the cluster to settle", func() bool {
		v, err := n.rdb.Exists(context.Background(), keySettling).Result()
		return err == nil && v == 0
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two nodes see each other; a room goes to the least loaded node and both
// then agree where it is; a dead node's rooms go elsewhere once its keys
// expire; a closed room's claim is released.
func TestPlacement(t *testing.T) {
	r := redistest.Start(t)
	ctx := context.Background()
	sa, sb := &state{load: 5}, &state{load: 1}
	a := newNode(t, r, "a", sa)
	defer a.Close()
	b := newNode(t, r, "b", sb)
	defer b.Close()
	// A new cluster first settles: nothing is placed while it does.
	if _, _, err := a.Place(ctx, "early"); !errors.Is(err, errSettling) {
		t.Errorf("Place on a new cluster: %v, want the settling error", err)
	}
	settled(t, a)

	nodes, err := a.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].ID != "a" || nodes[1].URL != "ws://b/ws" {
		t.Fatalf("Nodes = %+v, %v", nodes, err)
	}
	owner, local, err := a.Place(ctx, "math")
	if err != nil || local || owner.ID != "b" {
		t.Fatalf("a.Place(math) = %+v local %v, %v; want b, the less loaded", owner, local, err)
	}
	owner, local, err = b.Place(ctx, "math")
	if err != nil || !local || owner.ID != "b" {
		t.Fatalf("b.Place(math) = %+v local %v, %v; want itself", owner, local, err)
	}
	sb.set(1, "math")
	// Loads change: a new room goes to a, an existing one stays.
	sa.set(0)
	sb.set(9, "math")
	eventually(t, "the heartbeats to carry the new loads", func() bool {
		nodes, _ := a.Nodes(ctx)
		return len(nodes) == 2 && nodes[0].Load == 0 && nodes[1].Load == 9
	})
	if owner, _, _ := b.Place(ctx, "art"); owner.ID != "a" {
		t.Errorf("art placed on %s, want a (now the less loaded)", owner.ID)
	}
	if owner, _, _ := a.Place(ctx, "math"); owner.ID != "b" {
		t.Errorf("math moved to %s while b holds it", owner.ID)
	}

	// b dies: its keys expire within three heartbeats and math comes to a.
	b.halt()
	eventually(t, "b to leave the node list", func() bool {
		nodes, _ := a.Nodes(ctx)
		return len(nodes) == 1
	})
	if owner, local, err := a.Place(ctx, "math"); err != nil || !local {
		t.Errorf("after b died a.Place(math) = %+v local %v, %v; want a", owner, local, err)
	}
	a.Release("math")
	c := newNode(t, r, "c", &state{})
	defer c.Close()
	if owner, _, _ := c.Place(ctx, "math"); owner.ID != "c" {
		t.Errorf("after a released math, c.Place gave %s, want c", owner.ID)
	}
}

// Rooms started in a burst, faster than the heartbeats carry the loads,
// still spread over the nodes: each placed room counts in its node's load
// at once.
func TestBurstOfRoomsSpreads(t *testing.T) {
	r := redistest.Start(t)
	a := newNode(t, r, "a", &state{})
	defer a.Close()
	b := newNode(t, r, "b", &state{})
	defer b.Close()
	settled(t, a)
	on := map[string]int{}
	for i := range 10 {
		owner, _, err := a.Place(context.Background(), fmt.Sprintf("burst-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		on[owner.ID]++
	}
	if on["a"] < 3 || on["b"] < 3 {
		t.Errorf("10 rooms placed in a burst went %v, want them spread", on)
	}
}

// Redis going away: placing fails with ErrUnavailable and the node says
// it is not healthy; when Redis is back, the node recovers on its own.
func TestRedisDownAndBack(t *testing.T) {
	r := redistest.StartAt(t, 30600) // restarted: a fixed port below the ephemeral range
	ctx := context.Background()
	a := newNode(t, r, "a", &state{rooms: []string{"live"}})
	defer a.Close()
	eventually(t, "a healthy", a.Healthy)
	settled(t, a)
	r.Stop()
	eventually(t, "a to notice Redis is gone", func() bool { return !a.Healthy() })
	if _, _, err := a.Place(ctx, "math"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Place with Redis down: %v, want ErrUnavailable", err)
	}
	r.Restart(t)
	eventually(t, "a healthy again", a.Healthy)
	// Redis came back empty: placing waits until the nodes have claimed
	// their rooms again, then works.
	eventually(t, "placing to work again", func() bool {
		_, local, err := a.Place(ctx, "math")
		return err == nil && local
	})
	// Its live room was claimed again by the heartbeat.
	b := newNode(t, r, "b", &state{})
	settled(t, b)
	defer b.Close()
	if owner, _, _ := b.Place(ctx, "live"); owner.ID != "a" {
		t.Errorf("the room live on a is placed on %s after Redis came back", owner.ID)
	}
}

// placeAfterLoss asks n to place room until it is placed, and fails if
// it is placed elsewhere than on want. (Whether the settling refused it
// first depends on whether want's heartbeat came first.)
func placeAfterLoss(t *testing.T, n *Node, room, want, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		owner, _, err := n.Place(context.Background(), room)
		if err == nil {
			if owner.ID != want {
				t.Fatalf("%s: %s was placed on %s while %s runs it", what, room, owner.ID, want)
			}
			break
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s: Place: %v, want ErrUnavailable", what, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still refused after 5 s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Redis restarted without its data while a room runs: no node starts the
// room a second time before its owner has claimed it again: not one asked
// before any heartbeat has seen the empty Redis, nor a node that starts
// just then.
func TestRedisLosingItsDataSplitsNoRoom(t *testing.T) {
	r := redistest.StartAt(t, 30601) // restarted: a fixed port below the ephemeral range
	ctx := context.Background()
	a := newNode(t, r, "a", &state{load: 5, rooms: []string{"live"}})
	defer a.Close()
	b := newNode(t, r, "b", &state{}) // less loaded: new rooms go to b
	defer b.Close()
	settled(t, a)
	if owner, _, err := b.Place(ctx, "live"); err != nil || owner.ID != "a" {
		t.Fatalf("b.Place(live) = %+v, %v; want a", owner, err)
	}
	for round := range 3 {
		r.Stop()
		r.Restart(t)
		placeAfterLoss(t, b, "live", "a", fmt.Sprintf("round %d", round))
	}
	// A node starting just as Redis comes back empty.
	r.Stop()
	r.Restart(t)
	c := newNode(t, r, "c", &state{})
	defer c.Close()
	placeAfterLoss(t, c, "live", "a", "a node new to the empty Redis")
	settled(t, b)
	if owner, local, err := b.Place(ctx, "new"); err != nil || !local {
		t.Errorf("a new room after settling: %+v local %v, %v; want b", owner, local, err)
	}

	// What protects it, with no heartbeat in the way: on an empty Redis
	// the first Place starts the settling and is refused.
	a.halt()
	if err := b.rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if owner, _, err := b.Place(ctx, "live"); !errors.Is(err, errSettling) {
		t.Errorf("Place on an emptied Redis: %+v, %v; want the settling error", owner, err)
	}
}

// Every node cut off from Redis (which keeps its data) for longer than
// claims live: the first node back does not place the others' rooms before
// they are back to claim them.
func TestNodesAwayFromRedisSplitNoRoom(t *testing.T) {
	r := redistest.Start(t)
	const beat = 300 * time.Millisecond // claims live 900 ms
	pa, pb := tcpproxy.Start(t, fmt.Sprintf("127.0.0.1:%d", r.Port)), tcpproxy.Start(t, fmt.Sprintf("127.0.0.1:%d", r.Port))
	a := newNodeAt(t, "redis://"+pa.Addr()+"/0", "a", &state{}, beat) // less loaded: new rooms go to a
	defer a.Close()
	b := newNodeAt(t, "redis://"+pb.Addr()+"/0", "b", &state{load: 5, rooms: []string{"live"}}, beat)
	defer b.Close()
	settled(t, a)
	if owner, _, err := a.Place(context.Background(), "live"); err != nil || owner.ID != "b" {
		t.Fatalf("a.Place(live) = %+v, %v; want b", owner, err)
	}
	pa.Cut()
	pb.Cut()
	eventually(t, "both to notice", func() bool { return !a.Healthy() && !b.Healthy() })
	time.Sleep(3 * beat) // the claims lapse
	pa.Restore()
	eventually(t, "a back", a.Healthy)
	if owner, _, err := a.Place(context.Background(), "live"); !errors.Is(err, errSettling) {
		t.Fatalf("right after a came back: Place(live) = %+v, %v; want the settling error (b is not back yet)", owner, err)
	}
	pb.Restore()
	placeAfterLoss(t, a, "live", "b", "after both came back")
}

// A node cut off from Redis while its room formed again on another node
// is told so when it is back (OnLost), to send its peers there. Close
// waits for the calls under way.
func TestLostRoomIsReported(t *testing.T) {
	r := redistest.Start(t)
	const beat = 200 * time.Millisecond
	pa := tcpproxy.Start(t, fmt.Sprintf("127.0.0.1:%d", r.Port))
	lost := make(chan [2]string, 1)
	var running atomic.Int32
	a, err := New(Params{RedisURL: "redis://" + pa.Addr() + "/0", NodeID: "a", PublicURL: "ws://a/ws", Heartbeat: beat,
		Rooms: func() []string { return []string{"x"} },
		OnLost: func(room, owner string) {
			running.Add(1)
			defer running.Add(-1)
			select {
			case lost <- [2]string{room, owner}:
			default:
			}
			time.Sleep(3 * beat / 2) // slower than the heartbeat: one is always under way
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		a.Close()
		if n := running.Load(); n != 0 {
			t.Errorf("%d OnLost calls still running after Close", n)
		}
	}()
	sb := &state{}
	b := newNodeAt(t, r.URL(), "b", sb, beat)
	defer b.Close()
	settled(t, b)
	if owner, _, _ := b.Place(context.Background(), "x"); owner.ID != "a" {
		t.Fatalf("x placed on %s, want a", owner.ID)
	}
	pa.Cut()
	eventually(t, "a cut off", func() bool { return !a.Healthy() })
	eventually(t, "x to form again on b", func() bool {
		owner, local, err := b.Place(context.Background(), "x")
		return err == nil && local && owner.ID == "b"
	})
	sb.set(0, "x") // live on b now: its heartbeat renews the claim
	select {
	case l := <-lost:
		t.Fatalf("OnLost(%v) while a was cut off", l)
	default:
	}
	pa.Restore()
	select {
	case l := <-lost:
		if l != [2]string{"x", "b"} {
			t.Errorf("OnLost(%v), want x on b", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a, back, was not told that x runs on b")
	}
}

// Slots are shared by every recorder on the Redis: a client's limit holds
// across them, a lease not renewed lapses, a released slot frees at once.
func TestSlotsShared(t *testing.T) {
	r := redistest.StartAt(t, 30602) // restarted: a fixed port below the ephemeral range
	ctx := context.Background()
	a, err := NewSlots(r.URL(), 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _ := NewSlots(r.URL(), 300*time.Millisecond)
	defer b.Close()
	for _, s := range []struct {
		slots *Slots
		id    string
	}{{a, "r1"}, {b, "r2"}, {a, "r3"}} {
		if ok, _, err := s.slots.Acquire(ctx, "user1", s.id, 3); !ok || err != nil {
			t.Fatalf("acquire %s: %v %v", s.id, ok, err)
		}
	}
	ok, holders, err := b.Acquire(ctx, "user1", "r4", 3)
	if ok || err != nil || len(holders) != 3 {
		t.Fatalf("a fourth slot: %v %v %v, want refused naming the three", ok, holders, err)
	}
	if ok, _, _ := b.Acquire(ctx, "user2", "x", 1); !ok {
		t.Fatal("another client's slots are its own")
	}
	if err := a.Release(ctx, "user1", "r1"); err != nil {
		t.Fatal(err)
	}
	if ok, _, _ := b.Acquire(ctx, "user1", "r4", 3); !ok {
		t.Fatal("no slot after a release")
	}
	// r2 and r4 are renewed, r3 is not (its recorder died): it lapses.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		_ = b.Renew(ctx, "user1", []string{"r2", "r4"})
		time.Sleep(100 * time.Millisecond)
	}
	if n, _ := a.Used(ctx, "user1"); n != 2 {
		t.Errorf("used %d after r3's lease lapsed, want 2", n)
	}
	r.Stop()
	if _, _, err := a.Acquire(ctx, "user1", "r5", 3); !errors.Is(err, ErrUnavailable) {
		t.Errorf("acquire with Redis down: %v, want ErrUnavailable", err)
	}
	// Redis back without its data: the next renewal takes the running
	// recordings' slots again.
	r.Restart(t)
	if err := b.Renew(ctx, "user1", []string{"r2", "r4"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := a.Used(ctx, "user1"); n != 2 {
		t.Errorf("used %d after Redis came back empty and r2, r4 were renewed, want 2", n)
	}
}
