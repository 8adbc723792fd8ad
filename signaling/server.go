package signaling

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/internal/limit"
	"github.com/vclass/vclass/room"
)

// Params configure a Server. Zero durations take the documented defaults.
type Params struct {
	Rooms        *room.Manager
	Logger       *slog.Logger
	Metrics      *Metrics
	MaxMessage   int64         // bytes; default 256 KiB
	PingInterval time.Duration // default 10 s
	PongTimeout  time.Duration // default 30 s
	ResumeWindow time.Duration // default 15 s
	// A client that does not take what the server sends is dropped: when
	// OutQueue messages wait for it (default 512), or when one write
	// takes longer than WriteTimeout (default 10 s).
	OutQueue     int
	WriteTimeout time.Duration
	// MessageRate bounds the requests of one connection (default 50 a
	// second in bursts of 100: a join trickles a few dozen ICE candidates).
	MessageRate limit.Rate
	// MaxSources bounds the sources a peer names at join, and so what it
	// publishes (default 8).
	MaxSources int
	// PerIP, when set, bounds the connections each address holds open and
	// opens a second; TrustedProxies say whose X-Forwarded-For to believe.
	PerIP          *limit.PerIP
	TrustedProxies []netip.Prefix
	// AllowEmptyTickets lets peers join without a ticket (config
	// AuthSettings.AllowEmptyTickets); a ticket given is verified anyway.
	AllowEmptyTickets bool
	// TicketSecrets verify tickets (current first); none = every ticket
	// is refused.
	TicketSecrets []string
	// Place, in a cluster, says where a room lives before a joinRoom: ""
	// for this node, else the WebSocket URL of the node to send the client
	// to. An error (Redis down) refuses the join. Nil: a single node.
	Place func(ctx context.Context, roomID string) (redirect string, err error)
}

// Server accepts WebSocket clients at /ws.
type Server struct {
	p       Params
	log     *slog.Logger
	tickets *auth.Verifier

	mu       sync.Mutex
	detached map[string]*detachedPeer // by peer id, waiting for a resume
	attached map[string]attachedPeer  // by peer id, peers with a live session
	sessions map[*session]struct{}
	draining bool
	wg       sync.WaitGroup

	upgrader websocket.Upgrader
}

// heldPeer is a peer in a room with what its ticket granted, which a
// resumed connection takes over with it.
type heldPeer struct {
	peer   *room.Peer
	token  string
	role   auth.Role
	claims *auth.Claims
}

// attachedPeer is a peer with a live session.
type attachedPeer struct {
	heldPeer
	sess *session
}

// detachedPeer is a peer whose connection dropped, kept for a resume.
type detachedPeer struct {
	heldPeer
	timer *time.Timer
}

// NewServer makes a signaling server.
func NewServer(p Params) *Server {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	if p.Metrics == nil {
		p.Metrics = NewMetrics(nil, nil)
	}
	if p.MaxMessage == 0 {
		p.MaxMessage = 256 << 10
	}
	if p.PingInterval == 0 {
		p.PingInterval = 10 * time.Second
	}
	if p.PongTimeout == 0 {
		p.PongTimeout = 30 * time.Second
	}
	if p.ResumeWindow == 0 {
		p.ResumeWindow = 15 * time.Second
	}
	if p.OutQueue == 0 {
		p.OutQueue = 512
	}
	if p.WriteTimeout == 0 {
		p.WriteTimeout = 10 * time.Second
	}
	if p.MessageRate == (limit.Rate{}) {
		p.MessageRate = limit.Rate{PerSecond: 50, Burst: 100}
	}
	if p.MaxSources == 0 {
		p.MaxSources = 8
	}
	return &Server{
		p: p, log: p.Logger, tickets: auth.NewVerifier(p.TicketSecrets...),
		detached: map[string]*detachedPeer{}, attached: map[string]attachedPeer{}, sessions: map[*session]struct{}{},
		upgrader: websocket.Upgrader{
			HandshakeTimeout: 10 * time.Second,
			// Idle connections hold no write buffer: a class of idle
			// students costs little memory.
			WriteBufferPool: &sync.Pool{},
			// Portals embed the client from their own origin; tickets, not
			// origins, decide who may join.
			CheckOrigin: func(*http.Request) bool { return true },
			// Messages are small JSON; compression would cost CPU and
			// memory per connection for little (and is off by default).
			EnableCompression: false,
		},
	}
}

// ServeHTTP upgrades to a WebSocket and runs the session until it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.p.PerIP != nil {
		addr, now := limit.ClientIP(r, s.p.TrustedProxies), time.Now()
		if ok, wait := s.p.PerIP.Allow(addr, now); !ok {
			s.p.Metrics.refused("rate")
			limit.Refuse(w, wait, "too many new connections from this address; retry later")
			return
		}
		release, ok := s.p.PerIP.Open(addr, now)
		if !ok {
			s.p.Metrics.refused("connections")
			limit.Refuse(w, 5*time.Second, "too many connections open from this address")
			return
		}
		defer release()
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered with the HTTP error
	}
	conn.SetReadLimit(s.p.MaxMessage)
	sess := newSession(s, conn, r.RemoteAddr)
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "server is shutting down"), time.Now().Add(time.Second))
		conn.Close()
		return
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	sess.run()
	s.mu.Lock()
	delete(s.sessions, sess)
	s.mu.Unlock()
}

// release settles the peer of a session whose connection ended: it has
// left (the client closed properly), or it is kept for ResumeWindow. A
// resume that took the peer over first leaves it alone: the check and the
// handover are one step under s.mu.
//
// It reports whether the peer is to leave now (the caller makes it leave,
// outside the server's lock).
func (s *Server) release(sess *session, left bool) (leave bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.takenOver.Load() {
		return false
	}
	peer := sess.peer
	if a, ok := s.attached[peer.ID()]; ok && a.sess == sess {
		delete(s.attached, peer.ID())
	}
	if left || s.draining {
		return true
	}
	d := &detachedPeer{heldPeer: sess.held()}
	d.timer = time.AfterFunc(s.p.ResumeWindow, func() {
		s.mu.Lock()
		if s.detached[peer.ID()] != d {
			s.mu.Unlock()
			return
		}
		delete(s.detached, peer.ID())
		s.mu.Unlock()
		peer.TimeOut()
	})
	s.detached[peer.ID()] = d
	return false
}

// attach records that sess carries its peer; unattach forgets it.
func (s *Server) attach(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attached[sess.peer.ID()] = attachedPeer{heldPeer: sess.held(), sess: sess}
}

func (s *Server) unattach(sess *session, peerID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.attached[peerID]; ok && a.sess == sess {
		delete(s.attached, peerID)
	}
}

// resume hands a peer to a new connection if the token matches: a
// detached one, or one whose old connection the server still thinks alive
// (after a network change the old one may take 30 s to time out); that
// old connection is closed.
func (s *Server) resume(peerID, token string) (heldPeer, bool) {
	h, ok := s.takeOver(peerID, token)
	if ok && h.peer.Left() { // kicked or replaced, its connection not yet gone
		return heldPeer{}, false
	}
	return h, ok
}

func (s *Server) takeOver(peerID, token string) (heldPeer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.attached[peerID]; ok && a.token == token && token != "" {
		delete(s.attached, peerID)
		a.sess.takenOver.Store(true)
		a.sess.conn.Close()
		return a.heldPeer, true
	}
	d := s.detached[peerID]
	if d == nil || d.token != token || token == "" {
		return heldPeer{}, false
	}
	if !d.timer.Stop() {
		return heldPeer{}, false // it is leaving right now
	}
	delete(s.detached, peerID)
	return d.heldPeer, true
}

// BeginDrain refuses new connections and lets detached peers go.
func (s *Server) BeginDrain() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining = true
	for id, d := range s.detached {
		d.timer.Stop()
		delete(s.detached, id)
		go d.peer.Leave()
	}
}

// CloseAll tells every connection still open why and closes it (those
// in no room, which the rooms did not close).
func (s *Server) CloseAll(reason string) {
	s.mu.Lock()
	list := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		list = append(list, sess)
	}
	s.mu.Unlock()
	for _, sess := range list {
		sess.Notify("disconnect", map[string]string{"reason": reason})
		sess.Close()
	}
}

// Wait waits, until ctx ends, for every session to finish.
func (s *Server) Wait(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func randomToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
