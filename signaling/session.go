package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/room"
	"github.com/vclass/vclass/signaling/wire"
)

// outQueue is how many messages may wait for a slow client before the
// server gives up on it.
const outQueue = 512

// session is one WebSocket connection. Its reader handles requests one at a
// time; a writer goroutine sends what Notify and responses queue.
type session struct {
	srv  *Server
	conn *websocket.Conn
	log  *slog.Logger

	out       chan []byte
	closeOnce sync.Once
	closed    chan struct{}
	takenOver atomic.Bool // a resume moved its peer to another connection

	// owned by the reader goroutine
	limiter       tokenBucket
	afterResponse func() // set by a handler, run once its response is queued
	joined        bool
	displayName   string
	sources       []string
	role          auth.Role
	claims        *auth.Claims // nil for an anonymous peer
	peerID        string
	token         string
	peer          *room.Peer
}

var _ room.Sink = (*session)(nil)

// held is the session's peer with what its ticket granted.
func (s *session) held() heldPeer {
	return heldPeer{peer: s.peer, token: s.token, role: s.role, claims: s.claims}
}

func newSession(s *Server, conn *websocket.Conn, remote string) *session {
	return &session{
		srv: s, conn: conn, log: s.log.With("remote", remote),
		out: make(chan []byte, outQueue), closed: make(chan struct{}),
		limiter: tokenBucket{tokens: requestBurst},
	}
}

// A client may send requestRate requests a second on average, in bursts
// of up to requestBurst (a join trickles a few dozen ICE candidates).
const (
	requestRate  = 50
	requestBurst = 100
)

// tokenBucket limits the requests of one connection.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

func (b *tokenBucket) take(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens = min(requestBurst, b.tokens+now.Sub(b.last).Seconds()*requestRate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (s *session) run(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.writeLoop(ctx) }()
	go func() { defer wg.Done(); s.pingLoop(ctx) }()
	err := s.readLoop(ctx)
	s.Close()
	cancel()
	wg.Wait()
	if s.peer == nil {
		return
	}
	// A client that closes the socket properly (a closed tab sends 1001)
	// has left; one that vanished (no close frame) may come back.
	st := websocket.CloseStatus(err)
	if s.srv.release(s, st == websocket.StatusNormalClosure || st == websocket.StatusGoingAway) {
		s.peer.Leave()
	}
}

// readLoop handles requests until the connection ends, and returns why.
func (s *session) readLoop(ctx context.Context) error {
	for {
		typ, data, err := s.conn.Read(ctx)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				s.log.Info("message too big; connection closed")
			}
			return err
		}
		if typ != websocket.MessageText {
			s.respond(0, nil, errorf(codeBadRequest, "binary messages are not part of the protocol"))
			continue
		}
		s.handle(data)
		select {
		case <-s.closed:
			return nil
		default:
		}
	}
}

func (s *session) handle(data []byte) {
	var req wire.Message
	if err := json.Unmarshal(data, &req); err != nil {
		s.respond(0, nil, errorf(codeBadRequest, "not a JSON message: %v", err))
		return
	}
	if !req.Request || req.ID == 0 || req.Method == "" {
		s.respond(req.ID, nil, errorf(codeBadRequest, "expected {request: true, id, method, data}"))
		return
	}
	h, ok := handlers[req.Method]
	if !ok {
		s.respond(req.ID, nil, errorf(codeBadRequest, "unknown method %q", req.Method))
		return
	}
	if !s.limiter.take(time.Now()) {
		s.respond(req.ID, nil, errorf(codeTooManyRequests, "more than %d requests a second", requestRate))
		return
	}
	started := time.Now()
	res, err := h(s, req.Data)
	s.srv.p.Metrics.observeRequest(req.Method, err)
	if err != nil && toWire(err).Code == codeInternal {
		s.log.Error("request failed", "method", req.Method, "id", req.ID, "err", err)
	} else {
		s.log.Debug("request", "method", req.Method, "id", req.ID, "took", time.Since(started), "err", err)
	}
	s.respond(req.ID, res, err)
	if after := s.afterResponse; after != nil {
		s.afterResponse = nil
		after()
	}
}

func (s *session) respond(id uint64, data any, err error) {
	msg := wire.Message{Response: true, ID: id}
	ok := err == nil
	msg.OK = &ok
	if err != nil {
		msg.Error = toWire(err)
	} else {
		if data == nil {
			data = struct{}{}
		}
		raw, merr := json.Marshal(data)
		if merr != nil {
			s.log.Error("marshal response", "err", merr)
			ok = false
			msg.Error = &wire.Error{Code: codeInternal, Message: "internal error"}
		}
		msg.Data = raw
	}
	s.send(msg)
}

// Notify implements room.Sink.
func (s *session) Notify(method string, data any) {
	raw, err := json.Marshal(data)
	if err != nil {
		s.log.Error("marshal notification", "method", method, "err", err)
		return
	}
	s.send(wire.Message{Notification: true, Method: method, Data: raw})
}

func (s *session) send(msg wire.Message) {
	b, err := json.Marshal(msg)
	if err != nil {
		return
	}
	select {
	case <-s.closed:
	case s.out <- b:
	default:
		s.log.Warn("client too slow; closing its connection")
		go s.conn.Close(websocket.StatusPolicyViolation, "too slow")
		s.Close()
	}
}

// Close implements room.Sink: queued messages are still sent.
func (s *session) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

func (s *session) writeLoop(ctx context.Context) {
	defer s.conn.CloseNow()
	write := func(b []byte) error {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return s.conn.Write(wctx, websocket.MessageText, b)
	}
	for {
		select {
		case b := <-s.out:
			if err := write(b); err != nil {
				return
			}
		case <-s.closed:
			for {
				select {
				case b := <-s.out:
					if write(b) != nil {
						return
					}
				default:
					s.conn.Close(websocket.StatusGoingAway, "bye")
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

func (s *session) pingLoop(ctx context.Context) {
	t := time.NewTicker(s.srv.p.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.srv.p.PongTimeout)
		err := s.conn.Ping(pctx)
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Info("no pong; closing", "err", err)
			s.conn.CloseNow()
			return
		}
	}
}
