// Package client is a Go client of vclass-media: it speaks the signaling
// protocol of docs/protocol.md over a WebSocket and sends and receives
// media with Pion. Tests, the recorder and the load generator use it.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/sdp/v3"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/internal/pionlog"
	"github.com/vclass/vclass/internal/rtpfb"
	"github.com/vclass/vclass/signaling/wire"
)

// Options configure a Client.
type Options struct {
	URL         string // ws://host:port/ws
	DisplayName string
	Sources     []string // sources the client may publish, e.g. "audio:mic"
	Ticket      string
	Logger      *slog.Logger
	// Interceptors are added in front of Pion's defaults.
	Interceptors []interceptor.Factory
	// UDPConn, when set, carries all the client's media (both transports)
	// through one ICE UDP mux on it; tests wrap a socket to lose packets.
	UDPConn net.PacketConn
	// TCPOnly makes the client reach the server over ICE-TCP only.
	TCPOnly bool
	// Resume, when set, asks the server to hand this connection the peer
	// of an earlier one (docs/protocol.md, "Reconnecting"). This client
	// does not take that peer's transports over: when Resumed, call
	// LeaveRoom (and enter again); until then the old peer's
	// notifications are ignored.
	Resume *Resume
	// NoDirectReceive has every received packet go through Pion's chain
	// (RemoteTrack.Receive), as it does anyway with UDPConn, TCPOnly or
	// Interceptors; for comparison.
	NoDirectReceive bool
	// ReceiveEvery, when set, has the direct path read the sockets that
	// carry its streams at each tick of ReceiveEvery instead of waking for
	// each datagram: much less CPU for many transports (a recorder's), up
	// to that much more latency. Arrival times stay the kernel's.
	ReceiveEvery time.Duration
	// VerifyEvery, above 1, has RemoteTrack.ReceiveInfo's direct path
	// decrypt, and so authenticate, only every VerifyEvery-th packet of a
	// stream (after its first): the others are taken by their clear
	// header alone, at a fraction of the cost (a load generator's
	// receivers). A forged packet between two checked ones goes unseen.
	VerifyEvery int
	// OnICEState, when set, learns each change of a transport's ICE
	// connection state ("send" or "recv"); it runs on Pion's goroutine
	// and must not block.
	OnICEState func(transport string, state webrtc.ICEConnectionState)
}

// Resume names an earlier connection's peer by its id and resume token.
type Resume struct {
	PeerID string `json:"peerId"`
	Token  string `json:"token"`
}

// ServerError is an error response of the server to a request of Method.
type ServerError struct {
	Method, Code, Message string
	Redirect              string // with code "redirect": the node to join instead
}

func (e *ServerError) Error() string { return fmt.Sprintf("%s: %s: %s", e.Method, e.Code, e.Message) }

// ErrClosed is returned by requests after the client closed.
var ErrClosed = errors.New("client: closed")

// ErrRefused is returned by Dial when the server refused the connection
// for its per-address limits (HTTP 429); the error says when to retry.
var ErrRefused = errors.New("connection refused by the server's limits")

// Client is one connection to vclass-media.
type Client struct {
	opts Options
	log  *slog.Logger
	conn *websocket.Conn
	// writeMu makes writers take turns: a connection has one writer at a
	// time (pongs and the close frame go through WriteControl, which may
	// run beside it).
	writeMu sync.Mutex
	api     *webrtc.API
	ctx     context.Context
	cancel  context.CancelFunc

	nextID  atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan wire.Message
	handler map[string]func(json.RawMessage)

	PeerID      string
	ResumeToken string // to take this peer over from a new connection
	Resumed     bool   // the join took over Options.Resume's peer

	disconnect atomic.Pointer[string] // the reason of the server's `disconnect`
	// stale: the notifications are a taken-over peer's, until LeaveRoom.
	stale atomic.Bool
	// resetAt is the id of the leaveRoom whose answer resets the
	// transports; resetDone closes when dispatch has done it.
	resetAt   atomic.Uint64
	resetDone chan struct{} // guarded by mu
	closed    bool          // guarded by mu

	send *sendTransport // guarded by mu
	recv *recvTransport
	// iceSend and iceRecv restart ICE when a transport's media path
	// breaks while the connection to the server stays up.
	iceSend, iceRecv iceRepair

	notes    chan wire.Message
	readDone chan struct{} // the connection is gone: no more responses
	done     chan struct{} // ... and every notification is handled
}

// Dial connects and joins (the `join` request) but enters no room yet.
func Dial(ctx context.Context, opts Options) (*Client, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	api, err := newAPI(opts, nil)
	if err != nil {
		return nil, err
	}
	dialer := websocket.Dialer{HandshakeTimeout: 10 * time.Second, EnableCompression: false}
	conn, hres, err := dialer.DialContext(ctx, opts.URL, nil)
	if err != nil {
		if hres != nil && hres.StatusCode == http.StatusTooManyRequests {
			// The server's per-address limits (docs/security.md).
			return nil, fmt.Errorf("client: dial %s: %w: %s (retry after %ss)", opts.URL, ErrRefused, hres.Status, hres.Header.Get("Retry-After"))
		}
		return nil, fmt.Errorf("client: dial %s: %w", opts.URL, err)
	}
	conn.SetReadLimit(maxServerMessage)
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		opts: opts, log: opts.Logger, conn: conn, api: api, ctx: cctx, cancel: cancel,
		pending: map[uint64]chan wire.Message{}, handler: map[string]func(json.RawMessage){},
		notes: make(chan wire.Message, 1024), done: make(chan struct{}), readDone: make(chan struct{}),
	}
	c.recv = newRecvTransport(c)
	c.iceSend = iceRepair{c: c, transport: "send"}
	c.iceRecv = iceRepair{c: c, transport: "recv"}
	c.stale.Store(opts.Resume != nil)
	go c.readLoop()
	go c.dispatch()
	go c.pingLoop()
	var res struct {
		PeerID      string `json:"peerId"`
		ResumeToken string `json:"resumeToken"`
		Resumed     bool   `json:"resumed"`
	}
	req := map[string]any{"displayName": opts.DisplayName, "sources": opts.Sources, "ticket": opts.Ticket}
	if opts.Resume != nil {
		req["resume"] = opts.Resume
	}
	if err := c.Request(ctx, "join", req, &res); err != nil {
		c.Close()
		return nil, err
	}
	c.PeerID, c.ResumeToken, c.Resumed = res.PeerID, res.ResumeToken, res.Resumed
	if !res.Resumed {
		c.stale.Store(false) // no peer was taken over: nothing is stale
	}
	return c, nil
}

// newAPI is a browser-like Pion stack: NACKs, reports, TWCC, loopback
// candidates for tests on one machine. With direct, it is a receive
// transport's, whose UDP sockets are read through the direct path, which
// gives the TWCC feedback.
func newAPI(opts Options, direct *directRecv) (*webrtc.API, error) {
	me, err := newMediaEngine()
	if err != nil {
		return nil, err
	}
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: "urn:ietf:params:rtp-hdrext:ssrc-audio-level"}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	// An AV1 stream's frames and layers (the AV1 RTP specification).
	if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: DependencyDescriptorURI}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}

	reg := &interceptor.Registry{}
	for _, f := range opts.Interceptors {
		reg.Add(f)
	}
	// Pion's defaults but its statistics (GetStats), which nothing here
	// reads and which cost a recording a tenth of its CPU.
	// Pion asks for a missing packet again until it leaves the window; on
	// a transport with the direct path, a packet Pion missed may have come
	// that way: asked for as often as the direct path asks.
	var nackOpts []nack.GeneratorOption
	if direct != nil {
		nackOpts = append(nackOpts, nack.GeneratorMaxNacksPerPacket(rtpfb.MaxNacks))
	}
	if err := webrtc.ConfigureNackWithOptions(me, reg, nackOpts); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureRTCPReports(reg); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(me); err != nil {
		return nil, err
	}
	if direct == nil {
		if err := webrtc.ConfigureTWCCSender(me, reg); err != nil {
			return nil, err
		}
	} else {
		for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
			me.RegisterFeedback(webrtc.RTCPFeedback{Type: webrtc.TypeRTCPFBTransportCC}, kind)
			if err := me.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.TransportCCURI}, kind); err != nil {
				return nil, err
			}
		}
	}
	se := webrtc.SettingEngine{}
	se.LoggerFactory = pionlog.Factory{Log: opts.Logger}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if opts.UDPConn != nil {
		se.SetICEUDPMux(ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: opts.UDPConn}))
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	}
	if opts.TCPOnly {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	}
	if direct != nil {
		n, err := stdnet.NewNet()
		if err != nil {
			return nil, err
		}
		se.SetNet(directNet{Net: n, d: direct})
		se.SetDTLSKeyLogWriter(&direct.hs)
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(reg), webrtc.WithSettingEngine(se)), nil
}

// DependencyDescriptorURI is the AV1 dependency descriptor extension.
const DependencyDescriptorURI = "https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension"

// newMediaEngine registers the usual WebRTC codecs without RTX: Pion's
// NACK generator does not see packets repaired from an RTX stream and
// would ask for them again and again, so the server resends plainly.
func newMediaEngine() (*webrtc.MediaEngine, error) {
	videoFB := []webrtc.RTCPFeedback{
		{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"},
	}
	codecs := []struct {
		kind webrtc.RTPCodecType
		cap  webrtc.RTPCodecCapability
		pt   webrtc.PayloadType
	}{
		{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, 111},
		{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMA, ClockRate: 8000, Channels: 1}, 8},
		{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}, 0},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: videoFB}, 96},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0", RTCPFeedback: videoFB}, 98},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: videoFB}, 102},
		{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000, RTCPFeedback: videoFB}, 45},
	}
	me := &webrtc.MediaEngine{}
	for _, c := range codecs {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: c.cap, PayloadType: c.pt}, c.kind); err != nil {
			return nil, err
		}
	}
	return me, nil
}

// Request sends a request and decodes the response's data into out (may be nil).
func (c *Client) Request(ctx context.Context, method string, data, out any) error {
	return c.request(ctx, method, data, out, nil)
}

// request is Request; beforeSend, when set, learns the request's id first.
func (c *Client) request(ctx context.Context, method string, data, out any, beforeSend func(id uint64)) error {
	raw, err := json.Marshal(data)
	if err != nil {
		return err
	}
	id := c.nextID.Add(1)
	if beforeSend != nil {
		beforeSend(id)
	}
	ch := make(chan wire.Message, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	msg, _ := json.Marshal(wire.Message{Request: true, ID: id, Method: method, Data: raw})
	if err := c.write(ctx, msg); err != nil {
		return fmt.Errorf("client: %s: %w", method, err)
	}
	var res wire.Message
	select {
	case res = <-ch:
	case <-ctx.Done():
		return fmt.Errorf("client: %s: %w", method, ctx.Err())
	case <-c.readDone:
		select {
		case res = <-ch: // answered just before the connection ended
		default:
			return ErrClosed
		}
	}
	if !res.Succeeded() {
		e := &ServerError{Method: method}
		if res.Error != nil {
			e.Code, e.Message, e.Redirect = res.Error.Code, res.Error.Message, res.Error.Redirect
		}
		return e
	}
	if out != nil {
		return json.Unmarshal(res.Data, out)
	}
	return nil
}

// On registers a handler for a server notification; handlers run one at a
// time in arrival order, after the client's own handling.
func (c *Client) On(method string, fn func(data json.RawMessage)) {
	c.mu.Lock()
	c.handler[method] = fn
	c.mu.Unlock()
}

// Limits of the connection to the server: the largest message taken, how
// often the client pings, and how long the server may stay silent (its own
// pings, answers and pongs all count) before the connection is deemed gone.
const (
	maxServerMessage = 1 << 20
	pingEvery        = 10 * time.Second
	serverSilence    = 30 * time.Second
	writeWait        = 10 * time.Second
)

// write sends one text message, by ctx's deadline or writeWait at most.
func (c *Client) write(ctx context.Context, msg []byte) error {
	deadline := time.Now().Add(writeWait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	_ = c.conn.SetWriteDeadline(deadline)
	return c.conn.WriteMessage(websocket.TextMessage, msg)
}

// pingLoop pings the server so that a dead path shows as a read timeout
// even while the server has nothing to say.
func (c *Client) pingLoop() {
	t := time.NewTicker(pingEvery)
	defer t.Stop()
	for {
		select {
		case <-c.readDone:
			return
		case <-t.C:
			if c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)) != nil {
				return
			}
		}
	}
}

func (c *Client) readLoop() {
	defer close(c.readDone)
	defer close(c.notes) // dispatch then closes done
	alive := func(string) error { return c.conn.SetReadDeadline(time.Now().Add(serverSilence)) }
	_ = alive("")
	c.conn.SetPongHandler(alive)
	c.conn.SetPingHandler(func(data string) error {
		_ = alive("")
		err := c.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return
		}
		_ = alive("")
		var msg wire.Message
		if err := json.Unmarshal(data, &msg); err != nil {
			c.log.Warn("bad message from server", "err", err)
			continue
		}
		switch {
		case msg.Response:
			if msg.ID != 0 && msg.ID == c.resetAt.Load() {
				// In order with the notifications: what came before the
				// answer to leaveRoom was the old room's. (Notifications
				// leave room for it in the queue: see below.)
				select {
				case c.notes <- wire.Message{Notification: true, Method: resetMarker}:
				case <-c.ctx.Done():
					return
				}
			}
			c.mu.Lock()
			ch := c.pending[msg.ID]
			c.mu.Unlock()
			if ch != nil {
				ch <- msg
			}
		case msg.Notification:
			// Never blocks, and keeps a few places for reset markers: a
			// handler may be waiting for a response this loop must read.
			if len(c.notes) >= cap(c.notes)-4 {
				c.log.Warn("notification queue full; dropped", "method", msg.Method)
				continue
			}
			c.notes <- msg
		}
	}
}

// dispatch hands notifications on in order; done closes after the last,
// so that a disconnect's reason is known when Done fires.
func (c *Client) dispatch() {
	defer close(c.done)
	for msg := range c.notes {
		if msg.Method == resetMarker {
			c.resetTransports()
			continue
		}
		if c.stale.Load() && msg.Method != "disconnect" {
			continue
		}
		c.handleInternal(msg.Method, msg.Data)
		c.mu.Lock()
		fn := c.handler[msg.Method]
		c.mu.Unlock()
		if fn != nil {
			fn(msg.Data)
		}
	}
}

func (c *Client) handleInternal(method string, data json.RawMessage) {
	switch method {
	case "disconnect":
		var n struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(data, &n) == nil {
			c.disconnect.Store(&n.Reason)
		}
	case "newConsumer":
		c.recv.newConsumer(data)
	case "consumerClosed":
		c.recv.consumerClosed(data)
	case "offer":
		c.recv.offer(data)
	case "iceCandidate":
		var n struct {
			Transport string                   `json:"transport"`
			Candidate *webrtc.ICECandidateInit `json:"candidate"`
		}
		if json.Unmarshal(data, &n) != nil || n.Candidate == nil {
			return
		}
		if send := c.sendTransport(); n.Transport == "send" && send != nil {
			send.addCandidate(*n.Candidate)
		} else if n.Transport == "recv" {
			c.recv.addCandidate(*n.Candidate)
		}
	}
}

// resetMarker is queued by readLoop behind a leaveRoom's answer.
const resetMarker = "\x00reset"

// LeaveRoom leaves the room; the client may then enter one again (with
// new transports: the old ones are closed, and tracks received end). It
// waits for the notifications before it to be handled, so it must not be
// called from a notification handler or OnTrack.
func (c *Client) LeaveRoom(ctx context.Context) error {
	done := make(chan struct{})
	c.mu.Lock()
	c.resetDone = done
	c.mu.Unlock()
	err := c.request(ctx, "leaveRoom", struct{}{}, nil, func(id uint64) { c.resetAt.Store(id) })
	if err != nil && !errors.As(err, new(*ServerError)) {
		return err
	}
	select { // the transports are reset before anything of the next room
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return ErrClosed
	}
	return err
}

// resetTransports drops both transports after a leaveRoom; notifications
// from now on are the next room's.
func (c *Client) resetTransports() {
	c.mu.Lock()
	send := c.send
	c.send = nil
	done := c.resetDone
	c.resetDone = nil
	c.mu.Unlock()
	if send != nil {
		send.close()
	}
	c.recv.reset()
	c.stale.Store(false)
	if done != nil {
		close(done)
	}
}

// RoomPeer is a peer listed by joinRoom.
type RoomPeer struct {
	PeerID      string `json:"peerId"`
	DisplayName string `json:"displayName"`
	UserID      string `json:"userId"` // told to recorders only
	Producers   []struct {
		ProducerID string `json:"producerId"`
		Source     string `json:"source"`
		Kind       string `json:"kind"`
	} `json:"producers"`
}

// JoinRoom enters a room and returns the peers already there.
func (c *Client) JoinRoom(ctx context.Context, roomID string) ([]RoomPeer, error) {
	var res struct {
		PeerID string     `json:"peerId"`
		Peers  []RoomPeer `json:"peers"`
	}
	if err := c.Request(ctx, "joinRoom", map[string]any{"roomId": roomID}, &res); err != nil {
		return nil, err
	}
	c.PeerID = res.PeerID
	return res.Peers, nil
}

// DialRoom connects and enters roomID, following the cluster to the node
// the room lives on (a "redirect" answer to joinRoom: up to 3 hops).
// setup, when set, runs on each new client before it enters the room
// (to set OnTrack and handlers). opts.URL is where it starts.
func DialRoom(ctx context.Context, opts Options, roomID string, setup func(*Client)) (*Client, []RoomPeer, error) {
	for hops := 0; ; hops++ {
		c, err := Dial(ctx, opts)
		if err != nil {
			return nil, nil, err
		}
		if setup != nil {
			setup(c)
		}
		peers, err := c.JoinRoom(ctx, roomID)
		if err == nil {
			return c, peers, nil
		}
		c.Close()
		var se *ServerError
		if !errors.As(err, &se) || se.Code != "redirect" || se.Redirect == "" || hops == 3 {
			return nil, nil, err
		}
		opts.URL = se.Redirect
	}
}

// OnTrack sets the function called for each track received; it runs on
// Pion's goroutine and may read the track until it ends.
//
// Read every track given (or hand it to something that does): Pion makes
// the receiver's feedback (NACKs, reports, TWCC) as packets are read, so
// an unread track's packets look lost to the server, whose congestion
// control then narrows everything it sends this client.
func (c *Client) OnTrack(fn func(*RemoteTrack)) { c.recv.setOnTrack(fn) }

// Close leaves and disconnects.
func (c *Client) Close() {
	c.mu.Lock()
	c.closed = true
	send := c.send
	c.mu.Unlock()
	if send != nil {
		send.close()
	}
	c.recv.close()
	c.iceSend.stop()
	c.iceRecv.stop()
	// The close handshake: our 1000 tells the server the peer left; its
	// answer ends the reader. A server that does not answer is cut off.
	_ = c.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(time.Second))
	select {
	case <-c.readDone:
	case <-time.After(2 * time.Second):
	}
	c.conn.Close()
	c.cancel()
	select {
	case <-c.done:
	case <-time.After(2 * time.Second):
	}
}

// connected tells whether the connection to the server is still up.
func (c *Client) connected() bool {
	select {
	case <-c.readDone:
		return false
	default:
		return true
	}
}

// URL is the server this client is connected to.
func (c *Client) URL() string { return c.opts.URL }

// DisconnectReason is the reason the server gave in its `disconnect`
// notification ("" when it sent none); final once Done is closed.
func (c *Client) DisconnectReason() string {
	if r := c.disconnect.Load(); r != nil {
		return *r
	}
	return ""
}

// Done is closed when the connection to the server has ended and every
// notification it brought has been handled.
func (c *Client) Done() <-chan struct{} { return c.done }
