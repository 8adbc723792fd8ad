package client

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// As the browser SDK (web/vclass.js): a transport whose ICE has failed is
// restarted at once, one disconnected for iceDisconnectedGrace then; never
// more often than iceRestartInterval per transport.
//
// A restart made while the path is still dark is spent: Pion gives each new
// candidate pair a few checks (under 2 s) and then waits for its checking
// timeout (30 s). So until ICE connects, the restart is made again after
// iceRestartInterval, doubling up to iceRestartMaxInterval: a link that
// comes back is used within that.
const (
	iceDisconnectedGrace  = 2 * time.Second
	iceRestartInterval    = 4 * time.Second
	iceRestartMaxInterval = 8 * time.Second
)

// iceRepair restarts one transport's ICE when its media path breaks while
// the connection to the server stays up (a NAT rebinding, a network
// change, a long outage). A lost connection is the Session's to repair: it
// enters the room again, with new transports.
type iceRepair struct {
	c         *Client
	transport string // "send" or "recv"

	mu      sync.Mutex
	timer   *time.Timer
	last    time.Time
	again   time.Duration // until the next restart while ICE is not connected
	stopped bool
}

// changed follows pc's ICE connection state.
func (r *iceRepair) changed(pc *webrtc.PeerConnection, st webrtc.ICEConnectionState) {
	if fn := r.c.opts.OnICEState; fn != nil {
		fn(r.transport, st)
	}
	switch st {
	case webrtc.ICEConnectionStateFailed:
		r.schedule(pc, 0, false)
	case webrtc.ICEConnectionStateDisconnected:
		r.schedule(pc, iceDisconnectedGrace, false)
	case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
		r.mu.Lock()
		defer r.mu.Unlock()
		r.stopTimer()
		r.again = 0
	}
}

// schedule restarts pc's ICE after delay, if it is still down then; retry
// (after a failed attempt, which may have left ICE checking on new
// credentials) restarts it unless it is connected by then.
func (r *iceRepair) schedule(pc *webrtc.PeerConnection, delay time.Duration, retry bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || r.timer != nil {
		return
	}
	wait := max(delay, iceRestartInterval-time.Since(r.last))
	r.timer = time.AfterFunc(wait, func() { r.fire(pc, retry) })
}

// stopTimer drops a restart not made yet; r.mu held.
func (r *iceRepair) stopTimer() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

func (r *iceRepair) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	r.stopTimer()
}

func (r *iceRepair) fire(pc *webrtc.PeerConnection, retry bool) {
	r.mu.Lock()
	r.timer = nil
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	switch pc.ICEConnectionState() {
	case webrtc.ICEConnectionStateDisconnected, webrtc.ICEConnectionStateFailed:
	case webrtc.ICEConnectionStateChecking, webrtc.ICEConnectionStateNew:
		if !retry {
			return
		}
	default:
		return // connected, or closed
	}
	if !r.c.connected() {
		return // a new connection enters the room again (Session)
	}
	r.mu.Lock()
	r.last = time.Now() // a restart made, not a check that found ICE up
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(r.c.ctx, requestTimeout)
	defer cancel()
	err := r.c.restartICE(ctx, r.transport, pc)
	switch {
	case err == nil:
		r.c.log.Info("ICE restarted", "transport", r.transport)
		r.mu.Lock()
		r.again = min(max(2*r.again, iceRestartInterval), iceRestartMaxInterval)
		again := r.again
		r.mu.Unlock()
		r.schedule(pc, again, true) // again, unless connected by then
	case errors.Is(err, errNotCurrent), errors.Is(err, ErrClosed), r.c.ctx.Err() != nil, !r.c.connected():
	default:
		r.c.log.Warn("ICE restart", "transport", r.transport, "err", err)
		r.schedule(pc, 0, true)
	}
}

// errNotCurrent: the transport was replaced or closed since.
var errNotCurrent = errors.New("client: transport replaced")

// RestartICE restarts ICE on both transports: the server sends a new offer
// for the receiving one, and the sending one offers new credentials. The
// client does this on its own when a transport's ICE fails or stays
// disconnected; call it after a known change of network.
func (c *Client) RestartICE(ctx context.Context) error {
	var errs []error
	if send := c.sendTransport(); send != nil {
		errs = append(errs, c.restartICE(ctx, "send", send.pc))
	}
	c.recv.mu.Lock()
	recv := c.recv.pc
	c.recv.mu.Unlock()
	if recv != nil {
		errs = append(errs, c.restartICE(ctx, "recv", recv))
	}
	return errors.Join(errs...)
}

func (c *Client) restartICE(ctx context.Context, transport string, pc *webrtc.PeerConnection) error {
	if transport == "recv" {
		c.recv.mu.Lock()
		current := c.recv.pc == pc
		c.recv.mu.Unlock()
		if !current {
			return errNotCurrent
		}
		// The server answers with a new offer (and every consumer again),
		// which the recv transport answers as any other.
		return c.Request(ctx, "restartIce", struct{}{}, nil)
	}
	send := c.sendTransport()
	if send == nil || send.pc != pc {
		return errNotCurrent
	}
	return send.restartICE(ctx)
}

// restartICE offers new ICE credentials with no new producers. An offer
// left waiting by an earlier attempt is settled first; if it was a restart
// itself, that completes this one.
func (s *sendTransport) restartICE(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A restart offer left waiting is this restart, unless ICE has failed
	// since (a failed agent checks no more: it needs new credentials).
	wasRestart := s.restarting && s.pc.ICEConnectionState() != webrtc.ICEConnectionStateFailed
	if err := s.settle(ctx); err != nil {
		return err
	}
	if wasRestart || s.pc.RemoteDescription() == nil {
		return nil // restarted, or never negotiated: nothing to restart
	}
	offer, err := s.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return err
	}
	if err := s.pc.SetLocalDescription(offer); err != nil {
		return err
	}
	s.restarting = true
	return s.settle(ctx)
}
