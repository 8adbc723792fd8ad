package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Session is a participant that stays in its room. When its connection
// ends without the server saying it must (the node died, the network
// changed, the server restarted), it connects again, enters the room again
// (on the node the cluster now keeps it on) and publishes its tracks
// again, as the browser SDK does. Received tracks end with the old
// connection and arrive anew through OnTrack.
//
// A reconnect enters the room as a new peer, with new producers and
// consumers. When the node still holds the old peer (it is alive and has
// not let it go yet), the new connection takes it over with its resume
// token and leaves with it first, so the room never shows the participant
// twice; the peer id then stays the same.
type Session struct {
	opts Options // URL: where it came in
	room string

	ctx       context.Context // ends with Close
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	c        *Client // the connection in the room
	next     *Client // one being set up by a reconnect
	joining  bool
	onTrack  func(*RemoteTrack)
	handlers map[string]func(json.RawMessage)
	onState  func(SessionEvent)
	events   []SessionEvent // not yet delivered to onState
	wake     chan struct{}
	err      error

	// pub is held by Publish and by a reconnect's republishing, so that
	// every track published is published again on the next connection.
	pub      chan struct{}
	tracks   []LocalTrack      // one per source, the newest
	produced map[string]string // source -> producer id on the current connection
}

// SessionOptions configure a Session beyond its Client's options.
type SessionOptions struct {
	// GiveUpAfter ends the session when it has not reconnected in this
	// long (default 2 minutes).
	GiveUpAfter time.Duration
	// Ticket, when set, gives the ticket for each reconnect (the first
	// one may have expired by then); Options.Ticket is the first join's.
	// If it fails, the attempt goes on with the ticket it had.
	Ticket func(context.Context) (string, error)
	// MoreURLs are further entry points (other nodes, another load
	// balancer), tried in turn after Options.URL when a node is down.
	MoreURLs []string
	// Keepalive is how often the session pings the server (default 5 s);
	// a ping unanswered in twice that, at least 5 s, counts the
	// connection as lost.
	Keepalive time.Duration
}

// SessionEvent tells what a Session's connection is doing.
type SessionEvent struct {
	State  string // "reconnecting", "reconnected" or "closed"
	Reason string // why it reconnects or closed
	URL    string // with "reconnected": the node it is on now
	PeerID string // with "reconnected": its peer id
	// Err, with "reconnected", is why some tracks could not be published
	// again (the session goes on without them, and tries them again after
	// the next reconnect).
	Err error
}

// Disconnect reasons and join errors after which a session does not try
// again: the portal or the same user ended it, or it may not join.
var (
	finalReasons    = map[string]bool{"replaced": true, "kicked": true, "roomClosed": true}
	finalJoinErrors = map[string]bool{"unauthorized": true, "badRequest": true, "roomFull": true}
)

// NewSession prepares a session of opts.DisplayName in roomID; set its
// handlers, then Join.
func NewSession(opts Options, roomID string) *Session {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Session{
		opts: opts, room: roomID, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		handlers: map[string]func(json.RawMessage){}, pub: make(chan struct{}, 1), wake: make(chan struct{}, 1),
		produced: map[string]string{},
	}
}

// OnTrack sets the function called for each track received, on every
// connection of the session.
func (s *Session) OnTrack(fn func(*RemoteTrack)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onTrack = fn
	for _, c := range []*Client{s.c, s.next} {
		if c != nil {
			c.OnTrack(fn)
		}
	}
}

// On registers a notification handler on every connection of the session.
func (s *Session) On(method string, fn func(json.RawMessage)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[method] = fn
	for _, c := range []*Client{s.c, s.next} {
		if c != nil {
			c.On(method, fn)
		}
	}
}

// OnStateChange sets the function told of reconnects and of the end, from
// a successful Join on. It runs on a goroutine of its own, one event at a
// time, and may call Close.
func (s *Session) OnStateChange(fn func(SessionEvent)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.onState = fn
}

// Join connects and enters the room (following the cluster's redirects;
// while the cluster answers clusterUnavailable, for up to 10 s), and from
// then on keeps the session in it until Close. A failed Join may be tried
// again.
func (s *Session) Join(ctx context.Context, so SessionOptions) ([]RoomPeer, error) {
	if s.opts.UDPConn != nil {
		return nil, errors.New("client: a Session makes a new connection per reconnect and cannot share Options.UDPConn")
	}
	if so.GiveUpAfter <= 0 {
		so.GiveUpAfter = 2 * time.Minute
	}
	if so.Keepalive <= 0 {
		so.Keepalive = 5 * time.Second
	}
	s.mu.Lock()
	switch {
	case s.ctx.Err() != nil:
		s.mu.Unlock()
		return nil, ErrClosed
	case s.joining || s.c != nil:
		s.mu.Unlock()
		return nil, errors.New("client: the session has joined already")
	}
	s.joining = true
	s.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel) // Close ends a Join under way
	defer stop()
	c, peers, err := s.dialSettled(ctx)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.joining, s.next = false, nil
	if err == nil && s.ctx.Err() != nil {
		c.Close()
		err = ErrClosed
	}
	if err != nil {
		return nil, err
	}
	s.c = c
	go s.run(c, so)
	go s.deliver()
	return peers, nil
}

// clusterWait is how long Join tries again while a cluster answers
// clusterUnavailable (it settles for 3 s after Redis forgot it, or Redis
// is briefly away), as the browser SDK does.
const clusterWait = 10 * time.Second

// dialSettled is DialRoom, tried again while the cluster is unavailable.
func (s *Session) dialSettled(ctx context.Context) (*Client, []RoomPeer, error) {
	deadline := time.Now().Add(clusterWait)
	for attempt := 0; ; attempt++ {
		c, peers, err := DialRoom(ctx, s.opts, s.room, s.setup)
		var se *ServerError
		if err == nil || !errors.As(err, &se) || se.Code != "clusterUnavailable" || time.Now().After(deadline) {
			return c, peers, err
		}
		if err := sleepCtx(ctx, backoff(attempt, 0)); err != nil {
			return nil, nil, err
		}
	}
}

// setup gives a new connection the session's handlers.
func (s *Session) setup(c *Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = c
	for m, fn := range s.handlers {
		c.On(m, fn)
	}
	if s.onTrack != nil {
		c.OnTrack(s.onTrack)
	}
}

// Client is the session's current connection (another one after a
// reconnect; nil before Join); use it for requests of its own.
func (s *Session) Client() *Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c
}

// Publish publishes tracks now and again after every reconnect. While a
// reconnect is under way it waits for it; on a connection that has just
// died it fails, and the tracks are not kept.
func (s *Session) Publish(ctx context.Context, tracks ...LocalTrack) ([]Producer, error) {
	if s.Client() == nil {
		return nil, errors.New("client: Publish before the session joined")
	}
	select {
	case s.pub <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, ErrClosed
	}
	defer func() { <-s.pub }()
	prods, err := s.Client().Publish(ctx, tracks...)
	if err != nil {
		return nil, err
	}
	for _, t := range tracks {
		s.tracks = slices.DeleteFunc(s.tracks, func(o LocalTrack) bool { return o.Source == t.Source })
	}
	s.tracks = append(s.tracks, tracks...)
	s.noteProduced(prods)
	return prods, nil
}

// Unpublish stops publishing source (closes its producer) and forgets it:
// it is not published again after a reconnect.
func (s *Session) Unpublish(ctx context.Context, source string) error {
	select {
	case s.pub <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrClosed
	}
	defer func() { <-s.pub }()
	s.tracks = slices.DeleteFunc(s.tracks, func(o LocalTrack) bool { return o.Source == source })
	id, ok := s.produced[source]
	if !ok {
		return nil // refused on this connection: nothing to close
	}
	delete(s.produced, source)
	return s.Client().Request(ctx, "closeProducer", map[string]string{"producerId": id}, nil)
}

// noteProduced remembers the producer ids of the current connection.
func (s *Session) noteProduced(prods []Producer) {
	for _, p := range prods {
		s.produced[p.Source] = p.ProducerID
	}
}

// Done is closed when the session has ended: Close, a final disconnect,
// or no reconnect within GiveUpAfter. Err says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended (nil while it runs, ErrClosed after Close).
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close leaves the room and ends the session.
func (s *Session) Close() {
	s.cancel()
	if c := s.Client(); c != nil {
		c.Close()
		<-s.done
		return
	}
	s.finish(ErrClosed) // it never joined
}

// finish ends the session once, with err.
func (s *Session) finish(err error) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		s.emit(SessionEvent{State: "closed", Reason: err.Error()})
		close(s.done)
	})
}

// run watches the connection and replaces it when it is lost.
func (s *Session) run(c *Client, so SessionOptions) {
	var err error
	defer func() {
		if s.ctx.Err() != nil {
			err = ErrClosed
		}
		if cur := s.Client(); cur != nil {
			cur.Close()
		}
		s.finish(err)
	}()
	for {
		reason := s.watch(c, so.Keepalive)
		if s.ctx.Err() != nil {
			return
		}
		if finalReasons[reason] {
			err = fmt.Errorf("client: session ended: the server disconnected it (%s)", reason)
			return
		}
		if reason == "" {
			reason = "connection lost"
		}
		s.emit(SessionEvent{State: "reconnecting", Reason: reason})
		var pubErr error
		c, pubErr, err = s.reconnect(c, so)
		if err != nil {
			return
		}
		s.emit(SessionEvent{State: "reconnected", URL: c.URL(), PeerID: c.PeerID, Err: pubErr})
	}
}

// watch pings c until its connection ends and returns the server's reason.
func (s *Session) watch(c *Client, every time.Duration) string {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.Done():
			return c.DisconnectReason()
		case <-s.ctx.Done():
			return ""
		case <-t.C:
			ctx, cancel := context.WithTimeout(s.ctx, max(2*every, 5*time.Second))
			err := c.Request(ctx, "ping", struct{}{}, nil)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				c.log.Info("no answer to a ping; connecting again")
				c.conn.Close()
			}
		}
	}
}

// reconnect tries, with backoff, to be in the room again with every track
// published, first on the node it was on, then through the entry URLs in
// turn while nodes cannot be reached. pubErr is why some tracks could not
// be published again.
func (s *Session) reconnect(old *Client, so SessionOptions) (c *Client, pubErr, err error) {
	old.Close()
	select { // no Publish in between: what is published now is republished
	case s.pub <- struct{}{}:
	case <-s.ctx.Done():
		return nil, nil, ErrClosed
	}
	defer func() { <-s.pub }()
	start := time.Now()
	deadline := start.Add(so.GiveUpAfter)
	entries := append([]string{s.opts.URL}, so.MoreURLs...)
	next := 0
	url := old.URL()
	// Sent until a connection has taken the old peer over (and left with it).
	resume := &Resume{PeerID: old.PeerID, Token: old.ResumeToken}
	ticket := s.opts.Ticket
	var last error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if err := sleepCtx(s.ctx, backoff(attempt, time.Since(start))); err != nil {
			return nil, nil, ErrClosed
		}
		if so.Ticket != nil {
			ctx, cancel := context.WithTimeout(s.ctx, requestTimeout)
			t, err := so.Ticket(ctx)
			cancel()
			if err != nil {
				s.opts.Logger.Warn("no fresh ticket to reconnect; trying with the last one", "err", err)
			} else {
				ticket = t
			}
		}
		c, tookOver, pubErr, err := s.rejoin(url, resume, ticket, deadline)
		if tookOver {
			resume = nil
		}
		if err == nil {
			s.mu.Lock()
			s.c, s.next = c, nil
			s.mu.Unlock()
			return c, pubErr, nil
		}
		if s.ctx.Err() != nil {
			return nil, nil, ErrClosed
		}
		last = err
		var se *ServerError
		var down *unreachableError
		switch {
		case errors.As(err, &se) && (se.Method == "join" || se.Method == "joinRoom") && finalJoinErrors[se.Code]:
			return nil, nil, fmt.Errorf("client: session ended: cannot join again: %w", err)
		case errors.As(err, &down) && down.url == url:
			// That node is gone: another way in; the cluster knows where
			// the room goes now. (When a redirect named the dead node, the
			// way in is fine: the room's claim on that node has yet to
			// lapse, so try there again.)
			for range entries {
				url = entries[next%len(entries)]
				next++
				if url != down.url {
					break
				}
			}
		}
		s.opts.Logger.Info("reconnect failed; trying again", "room", s.room, "attempt", attempt+1, "err", err)
	}
	return nil, nil, fmt.Errorf("client: session ended: no reconnect in %s: %w", so.GiveUpAfter, last)
}

// rejoin makes one attempt: connect at url (following redirects), take
// over and drop the old peer if that node still has it, enter the room
// and publish again. tookOver says the old peer is gone. A track the
// server refuses now does not fail the attempt: pubErr says why.
func (s *Session) rejoin(url string, resume *Resume, ticket string, deadline time.Time) (c *Client, tookOver bool, pubErr, err error) {
	ctx, cancel := context.WithDeadline(s.ctx, deadline.Add(requestTimeout))
	defer cancel()
	ctx, cancelTry := context.WithTimeout(ctx, 2*requestTimeout)
	defer cancelTry()
	opts := s.opts
	opts.Ticket = ticket
	defer func() {
		if err != nil && c != nil {
			c.Close()
			s.mu.Lock()
			if s.next == c {
				s.next = nil
			}
			s.mu.Unlock()
			c = nil
		}
	}()
	for hops := 0; ; hops++ {
		if !tookOver {
			opts.Resume = resume
		} else {
			opts.Resume = nil
		}
		opts.URL = url
		c, err = Dial(ctx, opts)
		if err != nil {
			var se *ServerError
			if !errors.As(err, &se) {
				err = &unreachableError{url: url, err: err}
			}
			return nil, tookOver, nil, err
		}
		s.setup(c)
		if c.Resumed {
			// Its transports were the old connection's: leave with it, so
			// that the room does not show us twice, and come in anew.
			if err = c.LeaveRoom(ctx); err != nil {
				return c, tookOver, nil, err
			}
			tookOver = true
		}
		_, err = c.JoinRoom(ctx, s.room)
		var se *ServerError
		if errors.As(err, &se) && se.Code == "redirect" && se.Redirect != "" && hops < 3 {
			c.Close()
			url = se.Redirect
			continue
		}
		if err != nil {
			return c, tookOver, nil, err
		}
		clear(s.produced)
		if len(s.tracks) > 0 {
			prods, err := c.Publish(ctx, s.tracks...)
			if err != nil && !errors.As(err, &se) {
				return c, tookOver, nil, err // the connection failed: try again
			}
			if err != nil {
				// Refused whole (one source not allowed now, say): one at a
				// time, so that what may be published is.
				var errs []error
				for _, t := range s.tracks {
					p, err := c.Publish(ctx, t)
					if err != nil && !errors.As(err, &se) {
						return c, tookOver, nil, err
					}
					errs = append(errs, err)
					prods = append(prods, p...)
				}
				pubErr = errors.Join(errs...)
			}
			s.noteProduced(prods)
		}
		return c, tookOver, pubErr, nil
	}
}

// unreachableError is a node that could not be reached.
type unreachableError struct {
	url string
	err error
}

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// emit queues ev for the OnStateChange function.
func (s *Session) emit(ev SessionEvent) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// deliver hands events to the OnStateChange function, until the session
// has ended and its last event is delivered.
func (s *Session) deliver() {
	for {
		s.mu.Lock()
		evs, fn := s.events, s.onState
		s.events = nil
		s.mu.Unlock()
		for _, ev := range evs {
			if fn != nil {
				fn(ev)
			}
		}
		if len(evs) > 0 {
			continue
		}
		select {
		case <-s.wake:
		case <-s.done:
			s.mu.Lock()
			evs, fn = s.events, s.onState
			s.events = nil
			s.mu.Unlock()
			for _, ev := range evs {
				if fn != nil {
					fn(ev)
				}
			}
			return
		}
	}
}

// backoff is the wait before attempt n, after trying for elapsed: 0.25 s
// doubling to 1 s, for a room moving off a dead node comes back within
// seconds; after 15 s, 5 s. With jitter, so that a restarted node is not
// stormed by all its clients at once.
func backoff(n int, elapsed time.Duration) time.Duration {
	d := 250 * time.Millisecond << min(n, 2)
	if elapsed > 15*time.Second {
		d = 5 * time.Second
	}
	return time.Duration(float64(d) * (0.75 + rand.Float64()/2))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
