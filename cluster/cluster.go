// Package cluster lets several vclass-media nodes share rooms through
// Redis, with no protocol of their own: each node registers itself (id,
// public URL, load) under a key that expires unless its heartbeat renews
// it; a room is claimed by one node under a key that its owner's heartbeat
// renews too. A join for a room is served where the room lives: the node
// that gets it either owns the room or sends the client to the owner. When
// a node dies its keys expire, and its rooms form again on a live node as
// their clients come back. When Redis has no cluster data (the first start,
// or it lost its data) or a node was away from it longer than a claim
// lives, no room is placed for one claim's life, while every live node
// claims its rooms again.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Keys in Redis.
const (
	keyNodes      = "vclass:nodes"    // sorted set: node id, scored by when it expires (unix ms)
	keyNodePrefix = "vclass:node:"    // hash: url, load, started
	keyRoomPrefix = "vclass:room:"    // string: the owning node's id
	keyAlive      = "vclass:alive"    // string renewed by every heartbeat: missing once none came for a claim's life
	keySettling   = "vclass:settling" // while it exists, no room is placed (the owners are claiming theirs)
	defaultBeat   = time.Second       // heartbeat; a node or room not renewed for 3 beats is gone
	opTimeout     = 1500 * time.Millisecond
	lostWait      = 5 * time.Second // what Close waits for OnLost calls
)

// ErrUnavailable is returned while Redis cannot be reached: new joins
// cannot be placed (rooms already running keep running).
var ErrUnavailable = errors.New("cluster: Redis is unavailable")

// errSettling is why rooms are not placed for a while after Redis lost its
// data, or after a node was away from it longer than a claim lives: until
// every live node has claimed its rooms again, a room could otherwise
// start a second time on another node.
var errSettling = fmt.Errorf("%w: the nodes are claiming their rooms again after Redis lost its data or was away; try again in a few seconds", ErrUnavailable)

// Params configure a Node.
type Params struct {
	RedisURL  string // redis://host:port/db
	NodeID    string
	PublicURL string // how clients reach this node's WebSocket (wss://host/n/media-1/ws)
	// InternalURL is how the other nodes reach this node's HTTP API
	// (http://vclass-media-1:8011), for the portal API across nodes.
	InternalURL string
	// Load is the node's current load (peers), read at each heartbeat.
	Load func() int
	// Rooms lists the rooms live on this node, whose claims the heartbeat
	// renews.
	Rooms func() []string
	// OnLost, when set, is told of a room live here whose claim another
	// node holds: the room formed there while this node was cut off from
	// Redis. Its peers here belong there (called on a goroutine of its
	// own; Close waits up to 5 s for it).
	OnLost    func(room, owner string)
	Heartbeat time.Duration // default 1 s; the keys live 3 heartbeats
	Logger    *slog.Logger
}

// quietRedis keeps go-redis's own log (the standard logger) quiet.
var quietRedis sync.Once

type discard struct{}

func (discard) Printf(context.Context, string, ...any) {}

// Info is a live node as Redis knows it.
type Info struct {
	ID       string `json:"id"`
	URL      string `json:"url"`
	Internal string `json:"internal"`
	Load     int    `json:"load"`
}

// Node is this process's membership of the cluster.
type Node struct {
	p   Params
	rdb *redis.Client
	log *slog.Logger
	ttl time.Duration

	mu      sync.Mutex
	healthy bool
	lastOK  time.Time // the last heartbeat that reached Redis
	stop    chan struct{}
	done    chan struct{}
	lost    sync.WaitGroup // OnLost calls under way
}

// New connects to Redis (lazily: a Redis that is down at start is tried
// again at each heartbeat) and starts the heartbeat.
func New(p Params) (*Node, error) {
	if p.NodeID == "" || p.PublicURL == "" {
		return nil, errors.New("cluster: a node needs an id (VCLASS_NODE_ID) and a public URL (VCLASS_PUBLIC_URL)")
	}
	opts, err := redis.ParseURL(p.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("cluster: VCLASS_REDIS_URL: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = opTimeout, opTimeout, opTimeout
	opts.MaxRetries = 1
	if p.Heartbeat <= 0 {
		p.Heartbeat = defaultBeat
	}
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Load == nil {
		p.Load = func() int { return 0 }
	}
	if p.Rooms == nil {
		p.Rooms = func() []string { return nil }
	}
	quietRedis.Do(func() { redis.SetLogger(discard{}) }) // errors reach us as values
	n := &Node{p: p, rdb: redis.NewClient(opts), log: p.Logger, ttl: 3 * p.Heartbeat,
		stop: make(chan struct{}), done: make(chan struct{})}
	n.beat()
	go n.run()
	return n, nil
}

// Close leaves the cluster: the node's key goes at once, its rooms' claims
// expire (clients come back elsewhere).
func (n *Node) Close() {
	n.halt()
	lost := make(chan struct{})
	go func() {
		n.lost.Wait()
		close(lost)
	}()
	select {
	case <-lost:
	case <-time.After(lostWait):
		n.log.Warn("leaving the cluster with rooms still being moved")
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	n.rdb.ZRem(ctx, keyNodes, n.p.NodeID)
	n.rdb.Del(ctx, keyNodePrefix+n.p.NodeID)
	n.rdb.Close()
}

// ID is this node's id.
func (n *Node) ID() string { return n.p.NodeID }

// Healthy reports whether the last heartbeat reached Redis.
func (n *Node) Healthy() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.healthy
}

// halt stops the heartbeat, as a dead node's stops.
func (n *Node) halt() {
	select {
	case <-n.stop:
	default:
		close(n.stop)
	}
	<-n.done
}

func (n *Node) run() {
	defer close(n.done)
	t := time.NewTicker(n.p.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.beat()
		}
	}
}

// claimScript renews a room's claim if this node holds it, or no one
// does, or its holder is not live; it returns the owner. KEYS: the room,
// the nodes set; ARGV: this node, the claim's life (ms), now (ms).
const claimScript = `
local owner = redis.call('GET', KEYS[1])
if owner ~= false and owner ~= ARGV[1] then
  local alive = redis.call('ZSCORE', KEYS[2], owner)
  if alive and tonumber(alive) > tonumber(ARGV[3]) then
    return owner
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]`

// settleScript renews the cluster's heartbeat key and starts a settling
// period (no room placed for ARGV[2] ms) when that key had lapsed (no
// heartbeat for a claim's life: the cluster's first start, Redis lost its
// data or came back from an old snapshot, or every node was away) or when
// this node was away longer than claims live (ARGV[3] = "1"); it returns 1
// if it started one. KEYS: alive, settling.
const settleScript = `
local was = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if was == false or ARGV[3] == '1' then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`

// beat renews the node's registration and its rooms' claims.
func (n *Node) beat() {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	now := time.Now()
	id := n.p.NodeID
	n.mu.Lock()
	away := !n.lastOK.IsZero() && now.Sub(n.lastOK) > n.ttl
	n.mu.Unlock()
	awayArg := "0"
	if away {
		awayArg = "1"
	}
	var settle *redis.Cmd
	_, err := n.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, keyNodePrefix+id, "url", n.p.PublicURL, "internal", n.p.InternalURL, "load", n.p.Load(), "beat", now.UnixMilli())
		p.PExpire(ctx, keyNodePrefix+id, n.ttl)
		p.ZAdd(ctx, keyNodes, redis.Z{Score: float64(now.Add(n.ttl).UnixMilli()), Member: id})
		p.ZRemRangeByScore(ctx, keyNodes, "-inf", strconv.FormatInt(now.UnixMilli(), 10))
		settle = p.Eval(ctx, settleScript, []string{keyAlive, keySettling}, now.UnixMilli(), n.ttl.Milliseconds(), awayArg)
		return nil
	})
	if err == nil && settle.Val() == int64(1) {
		// Every live node claims its rooms again at its next beat (this
		// one below); new rooms wait until they all have.
		why := "no heartbeat in Redis for a claim's life: a new cluster, or Redis lost its data"
		if away {
			why = "this node was away from Redis longer than claims live"
		}
		n.log.Warn("no new rooms while every node claims its rooms again", "why", why, "for", n.ttl)
	}
	if err == nil {
		err = n.claim(ctx, now)
	}
	n.mu.Lock()
	was := n.healthy
	n.healthy = err == nil
	if err == nil {
		n.lastOK = now
	}
	n.mu.Unlock()
	switch {
	case err != nil && was:
		n.log.Error("Redis unreachable: new joins are refused, running rooms go on", "err", err)
	case err == nil && !was:
		n.log.Info("in the cluster", "node", id, "url", n.p.PublicURL)
	}
}

// claim renews the claims of the rooms live here, in one round trip, and
// hands those another node holds to OnLost (on goroutines of their own:
// moving a room takes a while, and the heartbeat goes on).
func (n *Node) claim(ctx context.Context, now time.Time) error {
	rooms := n.p.Rooms()
	if len(rooms) == 0 {
		return nil
	}
	cmds := make([]*redis.Cmd, len(rooms))
	_, err := n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, room := range rooms {
			cmds[i] = p.Eval(ctx, claimScript, []string{keyRoomPrefix + room, keyNodes}, n.p.NodeID, n.ttl.Milliseconds(), now.UnixMilli())
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, room := range rooms {
		owner, _ := cmds[i].Text()
		if owner == n.p.NodeID {
			continue
		}
		n.log.Warn("a room live here runs on another node too: its peers here are sent there", "room", room, "owner", owner)
		if n.p.OnLost != nil {
			n.lost.Add(1)
			go func() {
				defer n.lost.Done()
				n.p.OnLost(room, owner)
			}()
		}
	}
	return nil
}

// Nodes lists the live nodes.
func (n *Node) Nodes(ctx context.Context) ([]Info, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	ids, err := n.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: keyNodes, ByScore: true,
		Start: strconv.FormatInt(time.Now().UnixMilli(), 10), Stop: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	_, err = n.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, keyNodePrefix+id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var out []Info
	for i, id := range ids {
		h := cmds[i].Val()
		if h["url"] == "" {
			continue // expired between the two reads
		}
		load, _ := strconv.Atoi(h["load"])
		out = append(out, Info{ID: id, URL: h["url"], Internal: h["internal"], Load: load})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out, nil
}

// placeScript claims a room for a node unless a live node holds it, and
// returns the owner. While the cluster settles it places nothing (a room
// with a live owner is still found), and a lapsed heartbeat key (no
// heartbeat has seen this Redis yet) starts the settling. KEYS: the room,
// the nodes set, the settling flag, the heartbeat key, the chosen node's
// hash; ARGV: the chosen node, the claim's life (ms), now (ms). A placed
// room counts one more peer in the chosen node's load until that node's
// next heartbeat says the real load, so that rooms started in a burst
// spread over the nodes.
var placeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[2])
end
local owner = redis.call('GET', KEYS[1])
if owner then
  local alive = redis.call('ZSCORE', KEYS[2], owner)
  if alive and tonumber(alive) > tonumber(ARGV[3]) then
    return owner
  end
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return redis.error_reply('SETTLING')
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('HINCRBY', KEYS[5], 'load', 1)
end
return ARGV[1]`)

// Place says where room lives: its live owner, or the least loaded live
// node, which it then claims. local reports whether that is this node.
func (n *Node) Place(ctx context.Context, room string) (owner Info, local bool, err error) {
	nodes, err := n.Nodes(ctx)
	if err != nil {
		return Info{}, false, err
	}
	// This node's load: what it holds now, or what Redis counts (rooms
	// just placed here, before this node's next heartbeat), the higher.
	best := n.self()
	for _, nd := range nodes {
		if nd.ID == best.ID {
			best.Load = max(best.Load, nd.Load)
		}
	}
	for _, nd := range nodes {
		if nd.Load < best.Load {
			best = nd
		}
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	id, err := placeScript.Run(ctx, n.rdb, []string{keyRoomPrefix + room, keyNodes, keySettling, keyAlive, keyNodePrefix + best.ID},
		best.ID, n.ttl.Milliseconds(), time.Now().UnixMilli()).Text()
	if err != nil && strings.Contains(err.Error(), "SETTLING") {
		return Info{}, false, errSettling
	}
	if err != nil {
		return Info{}, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if id == n.p.NodeID {
		return n.self(), true, nil
	}
	for _, nd := range nodes {
		if nd.ID == id {
			return nd, false, nil
		}
	}
	// An owner that registered after the list was read.
	h, err := n.rdb.HGetAll(ctx, keyNodePrefix+id).Result()
	if err != nil || h["url"] == "" {
		return Info{}, false, fmt.Errorf("%w: room %s is on node %s, which is not live", ErrUnavailable, room, id)
	}
	load, _ := strconv.Atoi(h["load"])
	return Info{ID: id, URL: h["url"], Internal: h["internal"], Load: load}, false, nil
}

func (n *Node) self() Info {
	return Info{ID: n.p.NodeID, URL: n.p.PublicURL, Internal: n.p.InternalURL, Load: n.p.Load()}
}

// Owner says which live node holds room, without placing it: ok is false
// when none does.
func (n *Node) Owner(ctx context.Context, room string) (owner Info, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	id, err := n.rdb.Get(ctx, keyRoomPrefix+room).Result()
	if errors.Is(err, redis.Nil) {
		return Info{}, false, nil
	}
	if err != nil {
		return Info{}, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if id == n.p.NodeID {
		return n.self(), true, nil
	}
	h, err := n.rdb.HGetAll(ctx, keyNodePrefix+id).Result()
	if err != nil {
		return Info{}, false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if h["url"] == "" {
		return Info{}, false, nil // its node is gone
	}
	load, _ := strconv.Atoi(h["load"])
	return Info{ID: id, URL: h["url"], Internal: h["internal"], Load: load}, true, nil
}

// releaseScript drops a room's claim if this node holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`)

// Release gives up this node's claim on a room that closed here.
func (n *Node) Release(room string) {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := releaseScript.Run(ctx, n.rdb, []string{keyRoomPrefix + room}, n.p.NodeID).Err(); err != nil {
		n.log.Warn("room claim not released (it will expire)", "room", room, "err", err)
	}
}
