package room

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/sfu"
)

// Params configure a Manager.
type Params struct {
	Engine    *sfu.Engine
	ServeMode config.ServeMode
	// EmptyGrace is how long an empty room lives before it closes.
	EmptyGrace time.Duration
	Logger     *slog.Logger
	// OnEvent hears of rooms starting and finishing and peers joining and
	// leaving (for webhooks). It must not block.
	OnEvent func(Event)
	// Limits of the node (config LimitSettings); 0: none. A room's own
	// MaxPeers may be lower than MaxPeersPerRoom, not higher.
	MaxPeersPerRoom     int // visible peers in one room
	MaxProducersPerPeer int // producers one peer has at once
	MaxRooms            int // rooms live on this node at once
}

// Event is a change the portal may want to know of.
type Event struct {
	Kind        string // roomStarted, roomFinished, peerJoined, peerLeft
	Room        string
	PeerID      string
	DisplayName string
	Role        string
	Reason      string
}

func (m *Manager) emit(e Event) {
	if m.params.OnEvent != nil {
		m.params.OnEvent(e)
	}
}

// Manager holds the rooms of this node.
type Manager struct {
	log    *slog.Logger
	params Params

	mu       sync.Mutex
	rooms    map[string]*Room
	draining bool
	wg       sync.WaitGroup // room goroutines
}

// NewManager makes an empty manager.
func NewManager(p Params) *Manager {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.ServeMode == "" {
		p.ServeMode = config.ServeOpen
	}
	return &Manager{log: p.Logger, params: p, rooms: map[string]*Room{}}
}

// PeerParams describe a peer entering a room.
type PeerParams struct {
	ID          string // chosen by the caller; a random one when empty
	Role        auth.Role
	UserID      string // the ticket's sub; a second peer of the same user replaces the first
	DisplayName string
	Sources     []string
	Sink        Sink
}

// Join puts a new peer in room id, creating the room on first join.
func (m *Manager) Join(id string, p PeerParams) (*Peer, []PeerInfo, error) {
	for {
		peer, infos, err := m.join(id, p)
		if !errors.Is(err, errRoomClosed) {
			return peer, infos, err
		}
		// The room closed between lookup and join: make a new one.
	}
}

func (m *Manager) join(id string, p PeerParams) (*Peer, []PeerInfo, error) {
	m.mu.Lock()
	if m.draining {
		m.mu.Unlock()
		return nil, nil, ErrShuttingDown
	}
	r := m.rooms[id]
	if r == nil && p.Role == auth.RoleRecorder {
		// A recorder alone would keep a room alive that no one uses.
		m.mu.Unlock()
		return nil, nil, fmt.Errorf("%w: %s", ErrNoRoom, id)
	}
	if r == nil {
		if m.fullLocked() {
			m.mu.Unlock()
			return nil, nil, fmt.Errorf("%w: %d rooms at most", ErrNodeFull, m.params.MaxRooms)
		}
		r = m.startRoomLocked(id, Settings{ServeMode: m.params.ServeMode}, 0)
	}
	m.mu.Unlock()
	return r.join(p)
}

// Settings are a room's own rules; zero limits mean none.
type Settings struct {
	ServeMode     config.ServeMode `json:"serveMode"`
	MaxPeers      int              `json:"maxPeers,omitempty"`      // visible peers (the recorder does not count)
	MaxPublishers int              `json:"maxPublishers,omitempty"` // peers publishing at once
}

// CreatedRoomWait is how long a room made by CreateRoom waits for its
// first peer before it may close.
const CreatedRoomWait = time.Hour

// ErrRoomExists is returned by CreateRoom for a room that is live.
var ErrRoomExists = errors.New("room: room exists")

// CreateRoom makes room id with settings (the mode defaults to the
// server's) before anyone joins.
func (m *Manager) CreateRoom(id string, s Settings) (*Room, error) {
	if s.ServeMode == "" {
		s.ServeMode = m.params.ServeMode
	}
	if !s.ServeMode.Valid() || s.MaxPeers < 0 || s.MaxPublishers < 0 {
		return nil, fmt.Errorf("%w: bad room settings %+v", ErrBadRequest, s)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.draining {
		return nil, ErrShuttingDown
	}
	if m.rooms[id] != nil {
		return nil, ErrRoomExists
	}
	if m.fullLocked() {
		return nil, fmt.Errorf("%w: %d rooms at most", ErrNodeFull, m.params.MaxRooms)
	}
	return m.startRoomLocked(id, s, CreatedRoomWait), nil
}

// fullLocked tells whether the node may start no more rooms.
func (m *Manager) fullLocked() bool {
	return m.params.MaxRooms > 0 && len(m.rooms) >= m.params.MaxRooms
}

func (m *Manager) startRoomLocked(id string, s Settings, wait time.Duration) *Room {
	r := newRoom(m, id, s, wait)
	m.rooms[id] = r
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		r.run()
	}()
	m.log.Info("room created", "room", id, "mode", r.mode)
	m.emit(Event{Kind: "roomStarted", Room: id})
	return r
}

// closeIfEmpty is called by a room whose grace period after its last
// visible peer left has run out; it closes unless someone joined meanwhile,
// and the recorders still in it leave with reason roomClosed.
func (m *Manager) closeIfEmpty(r *Room) {
	m.mu.Lock()
	closed, rest := r.closeIfEmpty()
	if closed && m.rooms[r.id] == r {
		delete(m.rooms, r.id)
	}
	m.mu.Unlock()
	if !closed {
		return
	}
	for _, p := range rest {
		p.notify("disconnect", map[string]string{"reason": "roomClosed"})
		p.leave("roomClosed")
		p.sink().Close()
	}
	m.log.Info("room closed", "room", r.id)
	m.emit(Event{Kind: "roomFinished", Room: r.id, Reason: "empty"})
}

// Room is the live room id, or nil.
func (m *Manager) Room(id string) *Room {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rooms[id]
}

// CloseRoom makes everyone in room id leave with reason and closes the
// room; false when there is no such room.
func (m *Manager) CloseRoom(id, reason string) bool { return m.closeRoom(id, reason, true) }

// MoveRoom closes this node's copy of a room that runs on another node now
// (a cluster found its claim taken): everyone leaves with reason
// roomMoved, told to reconnect, and is sent there. The room goes on
// elsewhere: no roomFinished event.
func (m *Manager) MoveRoom(id string) bool { return m.closeRoom(id, "roomMoved", false) }

func (m *Manager) closeRoom(id, reason string, finished bool) bool {
	m.mu.Lock()
	r := m.rooms[id]
	if r != nil {
		delete(m.rooms, id)
	}
	m.mu.Unlock()
	if r == nil {
		return false
	}
	r.close(reason)
	m.log.Info("room closed", "room", id, "reason", reason)
	if finished {
		m.emit(Event{Kind: "roomFinished", Room: id, Reason: reason})
	}
	return true
}

// Rooms lists the live rooms.
func (m *Manager) Rooms() []*Room {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*Room, 0, len(m.rooms))
	for _, r := range m.rooms {
		out = append(out, r)
	}
	return out
}

// Counts reports rooms, peers, producers and consumers, for metrics.
func (m *Manager) Counts() (rooms, peers, producers, consumers int) {
	for _, r := range m.Rooms() {
		p, pr, c := r.counts()
		rooms++
		peers += p
		producers += pr
		consumers += c
	}
	return
}

// Drain refuses new joins, closes every room with reason, and waits for
// the rooms' goroutines.
func (m *Manager) Drain(reason string) {
	m.mu.Lock()
	m.draining = true
	rooms := make([]*Room, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.rooms = map[string]*Room{}
	m.mu.Unlock()
	for _, r := range rooms {
		r.close(reason)
		m.emit(Event{Kind: "roomFinished", Room: r.id, Reason: reason})
	}
	m.wg.Wait()
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
