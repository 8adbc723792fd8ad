package room

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/sfu"
)

func TestJoinAndLeaveNotifyOthers(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "r", "Ann", "audio:mic", "video:cam")
	b, others := joinClient(t, m, "r", "Bob", "audio:mic")

	// Join notifies before it returns, so what is not there now never comes.
	if len(others) != 1 {
		t.Fatalf("Bob's Join returned %d others, want Ann: %+v", len(others), others)
	}
	if o := others[0]; o.PeerID != a.peer.ID() || o.DisplayName != "Ann" ||
		!slices.Equal(o.Sources, []string{"audio:mic", "video:cam"}) || o.Producers == nil || len(o.Producers) != 0 {
		t.Errorf("Bob's Join returned %+v, want Ann with her sources and an empty producer list", o)
	}
	joins := ofMethod(a.sink.all(), "peerJoinRoom")
	if len(joins) != 1 {
		t.Fatalf("Ann got %d peerJoinRoom, want 1:\n%s", len(joins), dump(joins))
	}
	if j := joins[0]; j.str("peerId") != b.peer.ID() || j.str("displayName") != "Bob" ||
		j.Raw == "" || !strings.Contains(j.Raw, `"sources":["audio:mic"]`) || !strings.Contains(j.Raw, `"producers":[]`) {
		t.Errorf("Ann's peerJoinRoom = %s, want Bob's peer with sources and producers arrays", j.Raw)
	}
	if n := count(b.sink.all(), "peerJoinRoom", nil); n != 0 {
		t.Errorf("Bob got %d peerJoinRoom on his own join, want none", n)
	}

	c, others := joinClient(t, m, "r", "Cid")
	ids := []string{}
	for _, o := range others {
		ids = append(ids, o.PeerID)
	}
	slices.Sort(ids)
	want := []string{a.peer.ID(), b.peer.ID()}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("Cid's Join returned peers %v, want Ann and Bob %v", ids, want)
	}
	for _, cl := range []*testClient{a, b} {
		if n := count(cl.sink.all(), "peerJoinRoom", map[string]string{"peerId": c.peer.ID(), "displayName": "Cid"}); n != 1 {
			t.Errorf("%s got %d peerJoinRoom for Cid, want 1", cl.name, n)
		}
	}
	if others := a.peer.Others(); len(others) != 2 {
		t.Errorf("Ann's Others() = %+v, want Bob and Cid", others)
	}
	if peers := a.peer.Room().Peers(); len(peers) != 3 {
		t.Errorf("Room.Peers() = %+v, want 3 peers", peers)
	}

	c.peer.Leave()
	c.peer.Leave() // a second Leave does nothing
	for _, cl := range []*testClient{a, b} {
		got := ofMethod(cl.sink.all(), "peerLeaveRoom")
		if len(got) != 1 || got[0].str("peerId") != c.peer.ID() || got[0].str("reason") != "left" {
			t.Errorf("%s got peerLeaveRoom %v, want one for Cid with reason left", cl.name, got)
		}
	}
	if n := count(c.sink.all(), "peerLeaveRoom", nil); n != 0 {
		t.Errorf("the leaving peer got %d peerLeaveRoom, want none", n)
	}
	if others := a.peer.Others(); len(others) != 1 || others[0].PeerID != b.peer.ID() {
		t.Errorf("Ann's Others() after Cid left = %+v, want Bob", others)
	}
	waitCounts(t, m, [4]int{1, 2, 0, 0})
	if _, _, err := c.peer.Produce(testOffer(t, sendAudio), []ProduceRequest{{Mid: "0", Source: "audio:mic"}}); !errors.Is(err, ErrLeft) {
		t.Errorf("Produce after Leave: %v, want ErrLeft", err)
	}
}

func TestSendMessageReachesEveryone(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "chat", "Ann")
	b, _ := joinClient(t, m, "chat", "Bob")
	c, _ := joinClient(t, m, "chat", "Cid")
	elsewhere, _ := joinClient(t, m, "other", "Eve")

	before := time.Now().Truncate(time.Second)
	if err := b.peer.SendMessage("hello, class"); err != nil {
		t.Fatal(err)
	}
	after := time.Now()

	for _, cl := range []*testClient{a, b, c} {
		msgs := ofMethod(cl.sink.all(), "newMessage")
		if len(msgs) != 1 {
			t.Errorf("%s got %d newMessage, want 1", cl.name, len(msgs))
			continue
		}
		msg := msgs[0]
		if msg.str("peerId") != b.peer.ID() || msg.str("displayName") != "Bob" || msg.str("text") != "hello, class" {
			t.Errorf("%s got %s, want Bob's peerId, displayName and text", cl.name, msg.Raw)
		}
		at, err := time.Parse(time.RFC3339, msg.str("time"))
		if err != nil || at.Before(before) || at.After(after) {
			t.Errorf("%s: time %q is not an RFC 3339 time of the sending (%v): %v", cl.name, msg.str("time"), after, err)
		}
	}
	if n := count(elsewhere.sink.all(), "newMessage", nil); n != 0 {
		t.Errorf("a peer of another room got %d newMessage", n)
	}
}

// Kinds and directions of the m-lines of a test offer.
type mline struct {
	kind webrtc.RTPCodecType
	dir  webrtc.RTPTransceiverDirection
}

var (
	sendAudio = mline{webrtc.RTPCodecTypeAudio, webrtc.RTPTransceiverDirectionSendonly}
	sendVideo = mline{webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverDirectionSendonly}
	recvVideo = mline{webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverDirectionRecvonly}
)

// testOffer is a send-transport offer of a plain Pion peer connection with
// one m-line per entry, mids "0", "1", ...
func testOffer(t testing.TB, lines ...mline) string {
	t.Helper()
	pc, err := clientAPI().NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, l := range lines {
		if _, err := pc.AddTransceiverFromKind(l.kind, webrtc.RTPTransceiverInit{Direction: l.dir}); err != nil {
			t.Fatal(err)
		}
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

// dropLines removes the SDP lines that start with prefix: an offer
// without its fingerprint or ICE credentials parses but cannot be applied.
func dropLines(sdp, prefix string) string {
	var out []string
	for _, l := range strings.Split(sdp, "\r\n") {
		if !strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\r\n")
}

func TestProduceRefusals(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	// m-lines: 0 audio sendonly, 1 video sendonly, 2 audio sendonly, 3 video recvonly.
	offer := testOffer(t, sendAudio, sendVideo, sendAudio, recvVideo)
	tests := []struct {
		name  string
		offer string
		reqs  []ProduceRequest
		want  error
	}{
		{"undeclared source", offer, []ProduceRequest{{"1", "video:screen"}}, ErrSourceNotAllowed},
		{"same source twice", offer, []ProduceRequest{{"0", "audio:mic"}, {"2", "audio:mic"}}, ErrSourceBusy},
		{"mid not in the offer", offer, []ProduceRequest{{"7", "audio:mic"}}, ErrBadRequest},
		{"empty mid", offer, []ProduceRequest{{"", "audio:mic"}}, ErrBadRequest},
		{"wrong kind for the mid", offer, []ProduceRequest{{"1", "audio:mic"}}, ErrBadRequest},
		{"mid that does not send", offer, []ProduceRequest{{"3", "video:cam"}}, ErrBadRequest},
		{"source not kind:name", offer, []ProduceRequest{{"0", "mic"}}, ErrBadRequest},
		{"unknown kind", offer, []ProduceRequest{{"0", "data:chat"}}, ErrBadRequest},
		{"one mid for two sources", offer, []ProduceRequest{{"0", "audio:mic"}, {"0", "audio:screen"}}, ErrBadRequest},
		{"SDP that does not parse", "this is not SDP", []ProduceRequest{{"0", "audio:mic"}}, sfu.ErrBadSDP},
		{"SDP that cannot be applied", dropLines(offer, "a=fingerprint:"), []ProduceRequest{{"0", "audio:mic"}, {"1", "video:cam"}}, sfu.ErrBadSDP},
		// A request refused on its second producer must not keep the first.
		{"valid, then undeclared", offer, []ProduceRequest{{"0", "audio:mic"}, {"1", "video:screen"}}, ErrSourceNotAllowed},
		{"valid, then wrong kind", offer, []ProduceRequest{{"0", "audio:mic"}, {"2", "video:cam"}}, ErrBadRequest},
		{"valid, then busy", offer, []ProduceRequest{{"0", "audio:mic"}, {"1", "video:cam"}, {"2", "audio:mic"}}, ErrSourceBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := "produce-" + strings.ReplaceAll(tt.name, " ", "-")
			watcher, _ := joinClient(t, m, id, "Watcher")
			p, _ := joinClient(t, m, id, "Ann", "audio:mic", "video:cam", "audio:screen")
			answer, infos, err := p.peer.Produce(tt.offer, tt.reqs)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Produce(%v) = %v, want %v", tt.reqs, err, tt.want)
			}
			if answer != "" || infos != nil {
				t.Errorf("failed Produce returned answer %q and producers %+v", answer, infos)
			}
			if left := producersOf(t, p.peer); len(left) != 0 {
				t.Errorf("a failed Produce left producers behind: %+v", left)
			}
			if n := count(watcher.sink.all(), "newProducer", nil); n != 0 {
				t.Errorf("a failed Produce announced %d newProducer", n)
			}
			// Nothing left behind: the same sources can be produced now.
			_, infos, err = p.peer.Produce(offer, []ProduceRequest{{"0", "audio:mic"}, {"1", "video:cam"}})
			if err != nil || len(infos) != 2 {
				t.Fatalf("a valid Produce after the failed one: %v (producers %+v), want 2 producers: "+
					"a refused Produce must leave no producer and the send transport as it was", err, infos)
			}
			if n := count(watcher.sink.all(), "newProducer", map[string]string{"peerId": p.peer.ID()}); n != 2 {
				t.Errorf("valid Produce announced %d newProducer, want 2", n)
			}
		})
	}
}

// producersOf lists a peer's producers as the room describes them.
func producersOf(t testing.TB, p *Peer) []ProducerInfo {
	t.Helper()
	for _, info := range p.Room().Peers() {
		if info.PeerID == p.ID() {
			return info.Producers
		}
	}
	t.Fatalf("peer %s is not in its room", p.ID())
	return nil
}

func TestProduceSameSourceAgainIsBusy(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "busy", "Ann", "audio:mic", "video:cam")
	first := a.mustPublish("audio:mic")
	if _, err := a.publish("audio:mic"); !errors.Is(err, ErrSourceBusy) {
		t.Fatalf("producing audio:mic again on a new m-line: %v, want ErrSourceBusy", err)
	}
	if got := producersOf(t, a.peer); len(got) != 1 || got[0].ProducerID != first["audio:mic"].ProducerID {
		t.Errorf("producers after the refused one: %+v, want only the first", got)
	}
}

// A produce sent again (its answer was lost on the way) with repeat gets
// the producers the first one made, and makes none: not in an Invite room
// whose invitation the first used up, not for a request that was refused
// or whose producer has closed since.
func TestProduceAgainListsWhatTheFirstMade(t *testing.T) {
	t.Parallel()
	for _, mode := range []config.ServeMode{config.ServeOpen, config.ServeInvite} {
		t.Run(string(mode), func(t *testing.T) {
			m := newTestManager(t, mode, time.Minute)
			a, _ := joinClient(t, m, "again", "Ann", "audio:mic", "video:cam")
			b, _ := joinClientAs(t, m, "again", "Bob", auth.RoleAdmin)
			a.peer.Start()
			b.peer.Start()
			if mode == config.ServeInvite {
				if err := b.peer.Invite(a.peer.ID(), []string{"audio:mic", "video:cam"}); err != nil {
					t.Fatal(err)
				}
			}
			offer, reqs, tracks := a.prepareOffer("audio:mic")
			_, lost, err := a.peer.Produce(offer, reqs)
			if err != nil {
				t.Fatal(err)
			}
			answer, again, err := a.peer.ProduceAgain(offer, reqs)
			if err != nil {
				t.Fatalf("the same produce again: %v", err)
			}
			a.applyAnswer(answer, tracks)
			if len(again) != 1 || again[0].ProducerID != lost[0].ProducerID {
				t.Fatalf("producers the second time: %+v, want %+v", again, lost)
			}
			mic := again[0].ProducerID
			if got := producersOf(t, a.peer); len(got) != 1 {
				t.Errorf("Ann's producers: %+v, want one", got)
			}
			if n := count(b.sink.all(), "newProducer", map[string]string{"producerId": lost[0].ProducerID}); n != 1 {
				t.Errorf("Bob got %d newProducer, want 1", n)
			}

			// Closed before the repeat: not listed, and not made again.
			offer, reqs, tracks = a.prepareOffer("video:cam")
			_, lost, err = a.peer.Produce(offer, reqs)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.peer.CloseProducer(lost[0].ProducerID); err != nil {
				t.Fatal(err)
			}
			answer, again, err = a.peer.ProduceAgain(offer, reqs)
			if err != nil || len(again) != 0 {
				t.Fatalf("again after the close: %+v, %v; want none", again, err)
			}
			a.applyAnswer(answer, tracks)
			if got := producersOf(t, a.peer); len(got) != 1 || got[0].Source != "audio:mic" {
				t.Errorf("Ann's producers after the close: %+v, want the microphone only", got)
			}

			// Her client closes what the repeat listed (it reported the
			// publish as failed): in an Invite room the invitation comes
			// back, and she may publish the microphone again.
			if err := a.peer.CloseProducer(mic); err != nil {
				t.Fatal(err)
			}
			if _, err := a.publish("audio:mic"); err != nil {
				t.Errorf("publishing the microphone again after closing what the repeat listed: %v", err)
			}
		})
	}
}

func TestPeerRefusesUnknownIDs(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "ids", "Ann", "audio:mic")
	cand := webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"}
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"CloseProducer", func() error { return a.peer.CloseProducer("nope") }, ErrUnknownProducer},
		{"pause producer", func() error { return a.peer.SetProducerPaused("nope", true) }, ErrUnknownProducer},
		{"resume producer", func() error { return a.peer.SetProducerPaused("nope", false) }, ErrUnknownProducer},
		{"pause consumer", func() error { return a.peer.SetConsumerPaused("nope", true) }, ErrUnknownConsumer},
		{"resume consumer", func() error { return a.peer.SetConsumerPaused("nope", false) }, ErrUnknownConsumer},
		{"answer before any offer", func() error { return a.peer.Answer("v=0", 1) }, ErrBadRequest},
		{"send candidate before produce", func() error { return a.peer.AddICECandidate("send", cand) }, ErrBadRequest},
		{"recv candidate before any offer", func() error { return a.peer.AddICECandidate("recv", cand) }, ErrBadRequest},
		{"unknown transport", func() error { return a.peer.AddICECandidate("sideways", cand) }, ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}
