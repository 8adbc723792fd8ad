package signaling

import (
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/internal/limit"
	"github.com/vclass/vclass/room"
	"github.com/vclass/vclass/signaling/wire"
)

// session is one WebSocket connection. Its reader handles requests one at a
// time; a writer goroutine sends what Notify and responses queue.
type session struct {
	srv  *Server
	conn *websocket.Conn
	log  *slog.Logger

	out       chan []byte
	closeOnce sync.Once
	closed    chan struct{}
	readDone  chan struct{} // the reader has seen the connection end
	takenOver atomic.Bool   // a resume moved its peer to another connection
	// tooSlow: its queue overflowed; the writer drops what is queued and
	// closes with 1008 instead of sending the rest.
	tooSlow atomic.Bool

	// owned by the reader goroutine
	limiter       limit.Bucket
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
		out: make(chan []byte, s.p.OutQueue), closed: make(chan struct{}), readDone: make(chan struct{}),
		limiter: limit.NewBucket(s.p.MessageRate),
	}
}

func (s *session) run() {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.writeLoop() }()
	err := s.readLoop()
	close(s.readDone)
	s.Close()
	wg.Wait()
	if s.peer == nil {
		return
	}
	// A client that closes the socket properly (a closed tab sends 1001)
	// has left; one that vanished (no close frame) may come back.
	left := websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway)
	if s.srv.release(s, left) {
		s.peer.Leave()
	}
}

// readLoop handles requests until the connection ends, and returns why.
// Every frame from the client, a pong included, moves the read deadline on:
// a client silent for PingInterval+PongTimeout is gone. Once the session is
// closed it reads on without handling, for the client's close frame.
func (s *session) readLoop() error {
	alive := s.srv.p.PingInterval + s.srv.p.PongTimeout
	_ = s.conn.SetReadDeadline(time.Now().Add(alive))
	s.conn.SetPongHandler(func(string) error {
		return s.conn.SetReadDeadline(time.Now().Add(alive))
	})
	for {
		typ, data, err := s.conn.ReadMessage()
		if err != nil {
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				s.log.Info("message too big; connection closed", "limit", s.srv.p.MaxMessage)
			case isTimeout(err):
				s.log.Info("client silent; connection closed", "for", alive)
			}
			return err
		}
		_ = s.conn.SetReadDeadline(time.Now().Add(alive))
		select {
		case <-s.closed:
			continue
		default:
		}
		if typ != websocket.TextMessage {
			s.respond(0, nil, errorf(codeBadRequest, "binary messages are not part of the protocol"))
			continue
		}
		s.handle(data)
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
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
	if ok, _ := s.limiter.Take(time.Now()); !ok {
		s.respond(req.ID, nil, errorf(codeTooManyRequests, "more than %g requests a second", s.srv.p.MessageRate.PerSecond))
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
		if !s.tooSlow.Swap(true) {
			s.log.Warn("client too slow: its queue is full; closing its connection", "queued", cap(s.out))
			s.srv.p.Metrics.droppedSlow("queue")
		}
		s.Close()
	}
}

// Close implements room.Sink: queued messages are still sent.
func (s *session) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
}

// closeGrace is how long a closing session waits for the client's close
// frame before it drops the connection.
const closeGrace = 2 * time.Second

// writeLoop is the connection's only writer: messages, pings and the close
// frame all go through it. On Close it sends what is queued and a close
// frame, and waits (closeGrace at most) for the client's answer, so that
// the kernel does not reset a connection with the last messages in flight.
// It closes the connection when it returns, which ends the reader too.
func (s *session) writeLoop() {
	defer s.conn.Close()
	write := func(typ int, b []byte) error {
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.srv.p.WriteTimeout))
		err := s.conn.WriteMessage(typ, b)
		if isTimeout(err) {
			s.log.Warn("client too slow: a write timed out; connection closed", "after", s.srv.p.WriteTimeout)
			s.srv.p.Metrics.droppedSlow("write")
		}
		return err
	}
	closeWith := func(code int, text string) {
		_ = s.conn.SetWriteDeadline(time.Now().Add(time.Second))
		if s.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, text)) != nil {
			return
		}
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-s.readDone:
		case <-t.C:
		}
	}
	ping := time.NewTicker(s.srv.p.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-s.readDone: // the connection is gone
			return
		case b := <-s.out:
			if s.tooSlow.Load() {
				closeWith(websocket.ClosePolicyViolation, "too slow")
				return
			}
			if err := write(websocket.TextMessage, b); err != nil {
				return
			}
		case <-ping.C:
			if err := write(websocket.PingMessage, nil); err != nil {
				return
			}
		case <-s.closed:
			if s.tooSlow.Load() {
				closeWith(websocket.ClosePolicyViolation, "too slow")
				return
			}
			for {
				select {
				case <-s.readDone:
					return
				case b := <-s.out:
					if write(websocket.TextMessage, b) != nil {
						return
					}
				default:
					closeWith(websocket.CloseGoingAway, "bye")
					return
				}
			}
		}
	}
}
