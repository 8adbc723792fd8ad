package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/vclass/vclass/cluster/redistest"
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
	n, err := New(Params{RedisURL: r.URL(), NodeID: id, PublicURL: "ws://" + id + "/ws", Heartbeat: 100 * time.Millisecond,
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

// Redis going away: placing fails with ErrUnavailable and the node says
// it is not healthy; when Redis is back, the node recovers on its own.
func TestRedisDownAndBack(t *testing.T) {
	r := redistest.Start(t)
	ctx := context.Background()
	a := newNode(t, r, "a", &state{rooms: []string{"live"}})
	defer a.Close()
	eventually(t, "a healthy", a.Healthy)
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
	defer b.Close()
	if owner, _, _ := b.Place(ctx, "live"); owner.ID != "a" {
		t.Errorf("the room live on a is placed on %s after Redis came back", owner.ID)
	}
}

// Redis restarted without its data while a room runs: no node starts the
// room a second time before its owner has claimed it again, even one that
// is asked before any heartbeat has seen the new, empty Redis.
func TestRedisLosingItsDataSplitsNoRoom(t *testing.T) {
	r := redistest.Start(t)
	ctx := context.Background()
	a := newNode(t, r, "a", &state{load: 5, rooms: []string{"live"}})
	defer a.Close()
	b := newNode(t, r, "b", &state{}) // less loaded: new rooms go to b
	defer b.Close()
	if owner, _, err := b.Place(ctx, "live"); err != nil || owner.ID != "a" {
		t.Fatalf("b.Place(live) = %+v, %v; want a", owner, err)
	}
	for round := range 3 {
		r.Stop()
		r.Restart(t)
		refused := 0
		deadline := time.Now().Add(5 * time.Second)
		for {
			owner, _, err := b.Place(ctx, "live")
			if err == nil {
				if owner.ID != "a" {
					t.Fatalf("round %d: after Redis lost its data, live was placed on %s while a runs it", round, owner.ID)
				}
				break
			}
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("round %d: Place: %v, want ErrUnavailable while settling", round, err)
			}
			refused++
			if time.Now().After(deadline) {
				t.Fatalf("round %d: still refused after 5 s: %v", round, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if refused == 0 {
			t.Errorf("round %d: b placed at once on an empty Redis, before the owners could claim again", round)
		}
	}
	if owner, local, err := b.Place(ctx, "new"); err != nil || !local {
		t.Errorf("a new room after settling: %+v local %v, %v; want b", owner, local, err)
	}
}

// Slots are shared by every recorder on the Redis: a client's limit holds
// across them, a lease not renewed lapses, a released slot frees at once.
func TestSlotsShared(t *testing.T) {
	r := redistest.Start(t)
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
}
