package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/client"
	"github.com/vclass/vclass/internal/tcpproxy"
)

// cuttableConn is a client's UDP socket that can lose everything, both
// ways, as a link that goes dark does.
type cuttableConn struct {
	net.PacketConn
	cut atomic.Bool
}

func (c *cuttableConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || !c.cut.Load() {
			return n, addr, err
		}
	}
}

func (c *cuttableConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.cut.Load() {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

// iceStates records a client's ICE states per transport.
type iceStates struct {
	mu     sync.Mutex
	states map[string][]webrtc.ICEConnectionState
}

func (s *iceStates) add(transport string, st webrtc.ICEConnectionState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states[transport] = append(s.states[transport], st)
}

// since is transport's states from index i on.
func (s *iceStates) since(transport string, i int) []webrtc.ICEConnectionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.states[transport][min(i, len(s.states[transport])):])
}

func (s *iceStates) len(transport string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.states[transport])
}

// restarted: a disconnection followed by new checks, which only an ICE
// restart brings (a path that comes back by itself goes straight back to
// connected).
func restarted(states []webrtc.ICEConnectionState) bool {
	i := slices.Index(states, webrtc.ICEConnectionStateDisconnected)
	return i >= 0 && slices.Contains(states[i:], webrtc.ICEConnectionStateChecking)
}

// A Go client whose media path goes dark while its WebSocket stays up
// restarts ICE on both transports by itself, and media flows both ways
// again without it leaving the room: after a short outage, and after one
// longer than ICE's own patience.
func TestGoClientRestartsICEWhenMediaPathBreaks(t *testing.T) {
	parallelIdle(t)
	srv := startMedia(t, loopbackConfig(27480, 27489, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	teacher := joinParticipant(t, ctx, srv.WS, "ice-class", "teacher", true)
	var left atomic.Int32
	teacher.c.On("peerLeaveRoom", func(json.RawMessage) { left.Add(1) })

	sock, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	link := &cuttableConn{PacketConn: sock}
	states := &iceStates{states: map[string][]webrtc.ICEConnectionState{}}
	c, err := client.Dial(ctx, client.Options{
		URL: srv.WS, DisplayName: "pupil", Sources: []string{"audio:mic", "video:cam"},
		UDPConn: link, OnICEState: states.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pupil := &participant{c: c, received: map[string]*atomic.Int64{}}
	pupil.track(c)
	if _, err := c.JoinRoom(ctx, "ice-class"); err != nil {
		t.Fatal(err)
	}
	publishSynthetic(t, ctx, c, "pupil")
	fromTeacher, fromPupil := teacher.c.PeerID+"/video:cam", c.PeerID+"/video:cam"
	waitFor(t, 15*time.Second, "video both ways", func() bool {
		return pupil.count(fromTeacher) > 30 && teacher.count(fromPupil) > 30
	})

	sendFrom, recvFrom := states.len("send"), states.len("recv")
	link.cut.Store(true)
	cutAt := time.Now()
	waitFor(t, 25*time.Second, "ICE restarts on both transports while the link is dark", func() bool {
		return restarted(states.since("send", sendFrom)) && restarted(states.since("recv", recvFrom))
	})
	t.Logf("both transports restarting %.1f s after the cut", time.Since(cutAt).Seconds())
	time.Sleep(time.Second) // the link stays dark a little longer
	link.cut.Store(false)
	restoredAt := time.Now()
	a, b := pupil.count(fromTeacher), teacher.count(fromPupil)
	waitFor(t, 15*time.Second, "video both ways again", func() bool {
		return pupil.count(fromTeacher) > a+30 && teacher.count(fromPupil) > b+30
	})
	t.Logf("video both ways again %.1f s after the link came back", time.Since(restoredAt).Seconds())
	t.Logf("send: %v; recv: %v", states.since("send", sendFrom), states.since("recv", recvFrom))

	// Dark for longer than ICE waits (Pion's agent gives up after 30 s and
	// never checks again by itself): only restarts bring the path back.
	sendFrom, recvFrom = states.len("send"), states.len("recv")
	link.cut.Store(true)
	time.Sleep(35 * time.Second)
	link.cut.Store(false)
	restoredAt = time.Now()
	a, b = pupil.count(fromTeacher), teacher.count(fromPupil)
	waitFor(t, 20*time.Second, "video both ways after the long outage", func() bool {
		return pupil.count(fromTeacher) > a+30 && teacher.count(fromPupil) > b+30
	})
	t.Logf("video both ways again %.1f s after a 35 s outage", time.Since(restoredAt).Seconds())
	t.Logf("send: %v; recv: %v", states.since("send", sendFrom), states.since("recv", recvFrom))
	if n := left.Load(); n != 0 {
		t.Errorf("the teacher saw %d peerLeaveRoom: the pupil should have stayed in the room", n)
	}
}

// A publish whose answer is held up past its deadline (the connection
// stalls but stays open) publishes nothing, and leaves the send transport
// usable: the next publish settles the waiting offer first, closing the
// producer the server made of the late request, and then goes through.
func TestPublishWithItsAnswerLostLeavesNothing(t *testing.T) {
	srv := startMedia(t, loopbackConfig(27490, 27499, ""))
	proxy := tcpproxy.Start(t, strings.TrimPrefix(srv.URL, "http://"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bob := joinParticipant(t, ctx, srv.WS, "stall", "bob", false)
	sources := watchProducers(bob.c)

	ann, err := client.Dial(ctx, client.Options{URL: "ws://" + proxy.Addr() + "/ws", DisplayName: "ann", Sources: []string{"audio:mic", "video:cam"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ann.Close()
	if _, err := ann.JoinRoom(ctx, "stall"); err != nil {
		t.Fatal(err)
	}
	tracks := syntheticTracks(t, ctx, "ann")
	proxy.Stall()
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	_, err = ann.Publish(short, tracks[0]) // the camera
	cancelShort()
	if err == nil {
		t.Fatal("a publish with its answer held up past its deadline succeeded")
	}
	proxy.Resume()
	waitFor(t, 10*time.Second, "the late request reaching the server", func() bool { return len(sources()) == 1 })

	if _, err := ann.Publish(ctx, tracks[1]); err != nil { // the microphone
		t.Fatalf("the next publish: %v", err)
	}
	waitFor(t, 10*time.Second, "Bob receiving Ann's microphone", func() bool { return bob.count(ann.PeerID+"/audio:mic") > 20 })
	waitFor(t, 5*time.Second, "only the microphone published", func() bool { return slices.Equal(sources(), []string{"audio:mic"}) })
}

// watchProducers follows the others' open producers as c is told of them,
// and returns their sources, sorted.
func watchProducers(c *client.Client) func() []string {
	var mu sync.Mutex
	live := map[string]string{} // producer id -> source
	c.On("newProducer", func(data json.RawMessage) {
		var n struct{ ProducerID, Source string }
		if json.Unmarshal(data, &n) == nil {
			mu.Lock()
			live[n.ProducerID] = n.Source
			mu.Unlock()
		}
	})
	c.On("producerClosed", func(data json.RawMessage) {
		var n struct{ ProducerID string }
		if json.Unmarshal(data, &n) == nil {
			mu.Lock()
			delete(live, n.ProducerID)
			mu.Unlock()
		}
	})
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Sorted(maps.Values(live))
	}
}
