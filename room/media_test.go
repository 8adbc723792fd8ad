package room

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/sfu"
)

// checkConsumers checks that sub was told of a consumer of each of pub's
// producers and that the media of each arrives on the mid it was told.
func checkConsumers(t *testing.T, sub, pub *testClient, prods map[string]ProducerInfo, ncs map[string]note) {
	t.Helper()
	for src, prod := range prods {
		nc, ok := ncs[prod.ProducerID]
		if !ok {
			t.Fatalf("%s: no newConsumer for %s's %s (%s); got %v", sub.name, pub.name, src, prod.ProducerID, ncs)
		}
		if nc.str("peerId") != pub.peer.ID() || nc.str("source") != src || nc.str("kind") != prod.Kind || nc.Data["paused"] != false {
			t.Errorf("%s: newConsumer %s, want peerId %s, source %s, kind %s, not paused", sub.name, nc.Raw, pub.peer.ID(), src, prod.Kind)
		}
		mid, kind := sub.waitMedia(nc.str("consumerId"))
		if mid != nc.str("mid") || kind != prod.Kind {
			t.Errorf("%s: %s media arrived as %s on mid %q, newConsumer said %s on mid %q", sub.name, src, kind, mid, prod.Kind, nc.str("mid"))
		}
	}
	// The media came, so did the offers: each newConsumer precedes its offer.
	notes := sub.sink.all()
	for _, prod := range prods {
		nc := ncs[prod.ProducerID]
		i := indexOf(notes, 0, "newConsumer", map[string]string{"consumerId": nc.str("consumerId")})
		if first, mid := firstOfferWithTrack(notes, nc.str("consumerId")); first < i || mid != nc.str("mid") {
			t.Errorf("%s: newConsumer #%d puts %s on mid %s; first offer with it #%d, on mid %s:\n%s",
				sub.name, i, nc.str("consumerId"), nc.str("mid"), first, mid, dump(notes))
		}
	}
}

// checkOfferVersions checks that the offers a client got count up by one.
func checkOfferVersions(t *testing.T, c *testClient) int {
	t.Helper()
	last := 0
	for _, o := range ofMethod(c.sink.all(), "offer") {
		v, _ := o.Data["version"].(float64)
		if int(v) != last+1 {
			t.Errorf("%s: offer version %v after %d, want %d", c.name, o.Data["version"], last, last+1)
		}
		last = int(v)
	}
	return last
}

func TestOpenModeMediaCreatesConsumers(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "open", "Ann", "audio:mic", "video:cam")
	b, _ := joinClient(t, m, "open", "Bob")
	a.peer.Start()
	b.peer.Start()
	prods := a.mustPublish("audio:mic", "video:cam")

	for src, prod := range prods {
		want := map[string]string{"peerId": a.peer.ID(), "producerId": prod.ProducerID, "source": src, "kind": prod.Kind}
		if n := count(b.sink.all(), "newProducer", want); n != 1 {
			t.Errorf("Bob got %d newProducer %v, want 1", n, want)
		}
	}
	if n := count(a.sink.all(), "newProducer", nil); n != 0 {
		t.Errorf("Ann got %d newProducer for her own producers", n)
	}

	checkConsumers(t, b, a, prods, b.newConsumers(2))
	// Both tracks started: Bob receives both, Ann nothing of her own.
	waitCounts(t, m, [4]int{1, 2, 2, 2})
	checkOfferVersions(t, b)
	if peers := b.peer.Others(); len(peers) != 1 || len(peers[0].Producers) != 2 {
		t.Errorf("Bob's Others() = %+v, want Ann with 2 producers", peers)
	}
}

func TestStartSubscribesLateJoiner(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "late", "Ann", "audio:mic", "video:cam")
	b, _ := joinClient(t, m, "late", "Bob")
	a.peer.Start()
	b.peer.Start()
	prods := a.mustPublish("audio:mic", "video:cam")
	b.newConsumers(2) // both tracks have started

	c, others := joinClient(t, m, "late", "Cid")
	var ann *PeerInfo
	for i := range others {
		if others[i].PeerID == a.peer.ID() {
			ann = &others[i]
		}
	}
	if len(others) != 2 || ann == nil || len(ann.Producers) != 2 {
		t.Fatalf("late Join returned %+v, want Ann with 2 producers and Bob", others)
	}
	for _, p := range ann.Producers {
		want := prods[p.Source]
		if p.ProducerID != want.ProducerID || p.Kind != want.Kind || p.Paused {
			t.Errorf("late Join describes Ann's producer as %+v, want %+v", p, want)
		}
	}
	waitCounts(t, m, [4]int{1, 3, 2, 2}) // nothing for Cid before Start
	c.peer.Start()
	waitCounts(t, m, [4]int{1, 3, 2, 4})
	c.peer.Start() // a second Start adds nothing
	waitCounts(t, m, [4]int{1, 3, 2, 4})
	checkConsumers(t, c, a, prods, c.newConsumers(2))
	checkOfferVersions(t, c)
}

func TestRestartICEAnnouncesEveryConsumer(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "restart", "Ann", "audio:mic", "video:cam")
	b, _ := joinClient(t, m, "restart", "Bob")
	a.peer.Start()
	b.peer.Start()
	prods := a.mustPublish("audio:mic", "video:cam")
	ncs := b.newConsumers(2)
	checkConsumers(t, b, a, prods, ncs)

	mark := len(b.sink.all())
	last := checkOfferVersions(t, b)
	b.peer.RestartICE()
	notes := b.sink.waitFor(t, "an offer after restartIce", func(notes []note, _ bool) bool {
		return indexOf(notes, mark, "offer", nil) >= 0
	})
	offer := indexOf(notes, mark, "offer", nil)
	for _, nc := range ncs {
		i := indexOf(notes, mark, "newConsumer", map[string]string{"consumerId": nc.str("consumerId"), "mid": nc.str("mid")})
		if i < 0 || i > offer {
			t.Errorf("newConsumer %s not announced again before the restart offer:\n%s", nc.Raw, dump(notes[mark:]))
		}
	}
	if v, _ := notes[offer].Data["version"].(float64); int(v) <= last {
		t.Errorf("restart offer has version %v, want more than %d", notes[offer].Data["version"], last)
	}
	if ufrag(notes[offer].str("sdp")) == ufrag(ofMethod(notes[:mark], "offer")[0].str("sdp")) {
		t.Error("restart offer has the ICE credentials of the first offer")
	}
	// The client answered; media still flows.
	for _, nc := range ncs {
		id := nc.str("consumerId")
		b.waitPackets(id, b.packets(id)+10)
	}
}

// TestRestartICEAbandonsUnansweredOffer: protocol.md, restartIce: "An
// offer still waiting for its answer is abandoned (a late answer gets
// staleVersion)". A client resuming after its WebSocket dropped relies on
// it: the offer it missed will never be answered.
// An offer left unanswered (sent while the client was away) is sent again
// on restartIce, with every consumer announced again; after its answer an
// offer with fresh ICE credentials follows, and media flows.
func TestRestartICEResendsUnansweredOffer(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "resend", "Ann", "audio:mic", "video:cam")
	b, _ := joinClient(t, m, "resend", "Bob")
	a.peer.Start()
	b.peer.Start()
	audio := a.mustPublish("audio:mic")["audio:mic"]
	b.waitMedia(b.newConsumers(1)[audio.ProducerID].str("consumerId"))

	b.holdOffers()
	cam := a.mustPublish("video:cam")["video:cam"]
	eventually(t, "Bob to get the offer of the camera", func() bool { return b.heldOffers() == 1 })
	lost := b.takeHeldOffer() // as if it was sent while Bob's WebSocket was down

	mark := len(b.sink.all())
	b.peer.RestartICE()
	notes := b.sink.waitForWithin(t, 5*time.Second, "the unanswered offer again, then an ICE-restart offer",
		func(notes []note, _ bool) bool {
			first := indexOf(notes, mark, "offer", nil)
			return first >= 0 && indexOf(notes, first+1, "offer", nil) >= 0
		})
	first := indexOf(notes, mark, "offer", nil)
	second := indexOf(notes, first+1, "offer", nil)
	if v, _ := notes[first].Data["version"].(float64); int(v) != lost.version || notes[first].str("sdp") != lost.sdp {
		t.Errorf("first offer after restartIce: version %v, want the unanswered offer %d again", v, lost.version)
	}
	if v, _ := notes[second].Data["version"].(float64); int(v) != lost.version+1 {
		t.Errorf("second offer version %v, want %d", v, lost.version+1)
	}
	if ufrag(notes[second].str("sdp")) == ufrag(lost.sdp) {
		t.Error("the second offer does not restart ICE (same ice-ufrag)")
	}
	for _, prod := range []string{audio.ProducerID, cam.ProducerID} {
		if indexOf(notes[:first], mark, "newConsumer", map[string]string{"producerId": prod}) < 0 {
			t.Errorf("no newConsumer for producer %s before the offer sent again", prod)
		}
	}
	nc := b.newConsumers(2)[cam.ProducerID]
	b.waitMedia(nc.str("consumerId"))
}

func ufrag(sdp string) string {
	for _, l := range strings.Split(sdp, "\r\n") {
		if strings.HasPrefix(l, "a=ice-ufrag:") {
			return l
		}
	}
	return ""
}

// mediaSection is the m-section of mid in sdp.
func mediaSection(sdp, mid string) string {
	for _, sec := range strings.Split(sdp, "\r\nm=")[1:] {
		if strings.Contains(sec, "\r\na=mid:"+mid+"\r\n") {
			return sec
		}
	}
	return ""
}

func TestProducerEndNotifications(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		end    func(t *testing.T, a *testClient, prods map[string]ProducerInfo)
		ended  []string
		leaves bool
	}{
		{
			name: "CloseProducer",
			end: func(t *testing.T, a *testClient, prods map[string]ProducerInfo) {
				if err := a.peer.CloseProducer(prods["video:cam"].ProducerID); err != nil {
					t.Fatalf("CloseProducer: %v", err)
				}
			},
			ended: []string{"video:cam"},
		},
		{
			name:   "publisher leaves",
			end:    func(_ *testing.T, a *testClient, _ map[string]ProducerInfo) { a.peer.Leave() },
			ended:  []string{"audio:mic", "video:cam"},
			leaves: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newTestManager(t, config.ServeOpen, time.Minute)
			a, _ := joinClient(t, m, "end", "Ann", "audio:mic", "video:cam")
			subs := []*testClient{}
			for _, name := range []string{"Bob", "Cid"} {
				s, _ := joinClient(t, m, "end", name)
				s.peer.Start()
				subs = append(subs, s)
			}
			a.peer.Start()
			prods := a.mustPublish("audio:mic", "video:cam")
			ncs := map[*testClient]map[string]note{}
			for _, s := range subs {
				ncs[s] = s.newConsumers(2)
				// Media flows once the offers are answered. Ending a producer
				// while an answer is being applied can wedge the recv
				// transport (see TestRefusedAnswerKeepsRecvTransport).
				for _, nc := range ncs[s] {
					s.waitMedia(nc.str("consumerId"))
				}
			}
			waitCounts(t, m, [4]int{1, 3, 2, 4})

			tt.end(t, a, prods)

			// CloseProducer and Leave notify before they return.
			for _, s := range subs {
				notes := s.sink.all()
				last := -1
				for src, prod := range prods {
					consumer := ncs[s][prod.ProducerID].str("consumerId")
					closed := map[string]string{"consumerId": consumer}
					prodClosed := map[string]string{"peerId": a.peer.ID(), "producerId": prod.ProducerID}
					if !slices.Contains(tt.ended, src) {
						if count(notes, "consumerClosed", closed)+count(notes, "producerClosed", prodClosed) != 0 {
							t.Errorf("%s: %s, which goes on, was closed:\n%s", s.name, src, dump(signalingNotes(notes)))
						}
						continue
					}
					ic, ip := indexOf(notes, 0, "consumerClosed", closed), indexOf(notes, 0, "producerClosed", prodClosed)
					if ic < 0 || ip < 0 || ic > ip || count(notes, "consumerClosed", closed) != 1 || count(notes, "producerClosed", prodClosed) != 1 {
						t.Errorf("%s: for %s want one consumerClosed{%s} then one producerClosed{%s}; got:\n%s",
							s.name, src, consumer, prod.ProducerID, dump(signalingNotes(notes)))
					}
					last = max(last, ip)
				}
				il := indexOf(notes, 0, "peerLeaveRoom", map[string]string{"peerId": a.peer.ID(), "reason": "left"})
				switch {
				case tt.leaves && il < last:
					t.Errorf("%s: want peerLeaveRoom after every consumerClosed and producerClosed; got:\n%s", s.name, dump(signalingNotes(notes)))
				case !tt.leaves && il >= 0:
					t.Errorf("%s: peerLeaveRoom although Ann stays", s.name)
				}
			}

			if tt.leaves {
				waitCounts(t, m, [4]int{1, 2, 0, 0})
				if n := count(a.sink.all(), "peerLeaveRoom", nil); n != 0 {
					t.Errorf("the leaving publisher got %d peerLeaveRoom", n)
				}
				return
			}
			waitCounts(t, m, [4]int{1, 3, 1, 2})
			if err := a.peer.CloseProducer(prods["video:cam"].ProducerID); !errors.Is(err, ErrUnknownProducer) {
				t.Errorf("closing the producer again: %v, want ErrUnknownProducer", err)
			}
			if got := producersOf(t, a.peer); len(got) != 1 || got[0].Source != "audio:mic" {
				t.Errorf("Ann's producers after CloseProducer: %+v, want audio:mic alone", got)
			}
			// A later offer stops sending on the closed consumer's m-line.
			for _, s := range subs {
				mid := ncs[s][prods["video:cam"].ProducerID].str("mid")
				s.sink.waitFor(t, s.name+": an offer that no longer sends on mid "+mid, func(notes []note, _ bool) bool {
					for _, o := range ofMethod(notes, "offer") {
						sec := mediaSection(o.str("sdp"), mid)
						if sec != "" && !strings.Contains(sec, "\r\na=sendrecv") && !strings.Contains(sec, "\r\na=sendonly") {
							return true
						}
					}
					return false
				})
			}
		})
	}
}

func TestProducerPauseNotifiesConsumers(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "pause", "Ann", "video:cam")
	b, _ := joinClient(t, m, "pause", "Bob")
	a.peer.Start()
	b.peer.Start()
	vid := a.mustPublish("video:cam")["video:cam"].ProducerID
	consumer := b.newConsumers(1)[vid].str("consumerId")
	b.waitMedia(consumer)
	byConsumer := map[string]string{"consumerId": consumer}

	if err := a.peer.SetProducerPaused(vid, true); err != nil {
		t.Fatalf("pausing: %v", err)
	}
	if n := count(b.sink.all(), "consumerPaused", byConsumer); n != 1 {
		t.Errorf("Bob got %d consumerPaused{%s}, want 1", n, consumer)
	}
	if n := count(a.sink.all(), "consumerPaused", nil); n != 0 {
		t.Errorf("the publisher got %d consumerPaused", n)
	}
	if got := producersOf(t, a.peer); len(got) != 1 || !got[0].Paused {
		t.Errorf("producer after pausing: %+v, want paused", got)
	}
	if err := a.peer.SetProducerPaused(vid, true); err != nil {
		t.Fatalf("pausing again: %v", err)
	}
	if n := count(b.sink.all(), "consumerPaused", byConsumer); n != 1 {
		t.Errorf("pausing a paused producer: Bob has %d consumerPaused, want still 1", n)
	}

	// A peer that starts receiving a paused producer is told so.
	c, others := joinClient(t, m, "pause", "Cid")
	for _, o := range others {
		if o.PeerID == a.peer.ID() && (len(o.Producers) != 1 || !o.Producers[0].Paused) {
			t.Errorf("late Join describes Ann's producers as %+v, want one paused", o.Producers)
		}
	}
	c.peer.Start()
	ncC := c.newConsumers(1)[vid]
	if ncC.Data["paused"] != true {
		t.Errorf("newConsumer of a paused producer: %s, want paused: true", ncC.Raw)
	}

	if err := a.peer.SetProducerPaused(vid, false); err != nil {
		t.Fatalf("resuming: %v", err)
	}
	for _, s := range []struct {
		c  *testClient
		id string
	}{{b, consumer}, {c, ncC.str("consumerId")}} {
		if n := count(s.c.sink.all(), "consumerResumed", map[string]string{"consumerId": s.id}); n != 1 {
			t.Errorf("%s got %d consumerResumed{%s}, want 1", s.c.name, n, s.id)
		}
	}
	// Media flows again to both.
	b.waitPackets(consumer, b.packets(consumer)+10)
	c.waitMedia(ncC.str("consumerId"))

	if err := b.peer.SetConsumerPaused(consumer, true); err != nil {
		t.Errorf("Bob pausing his consumer: %v", err)
	}
	if err := b.peer.SetConsumerPaused(consumer, false); err != nil {
		t.Errorf("Bob resuming his consumer: %v", err)
	}
	b.waitPackets(consumer, b.packets(consumer)+10)
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"another peer's consumer", a.peer.SetConsumerPaused(consumer, true), ErrUnknownConsumer},
		{"unknown consumer", b.peer.SetConsumerPaused("nope", true), ErrUnknownConsumer},
		{"another peer's producer paused", b.peer.SetProducerPaused(vid, true), ErrUnknownProducer},
		{"another peer's producer closed", b.peer.CloseProducer(vid), ErrUnknownProducer},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, tc.err, tc.want)
		}
	}
}

// TestProducerPauseReachesSelfPausedConsumer: docs/protocol.md sends
// consumerPaused/consumerResumed when "its producer was paused/resumed".
// A subscriber that paused its consumer itself must still learn that the
// producer paused, or after resuming its consumer it waits for media that
// does not come and shows no "paused" state.
func TestProducerPauseReachesSelfPausedConsumer(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "selfpause", "Ann", "video:cam")
	b, _ := joinClient(t, m, "selfpause", "Bob")
	a.peer.Start()
	b.peer.Start()
	vid := a.mustPublish("video:cam")["video:cam"].ProducerID
	consumer := b.newConsumers(1)[vid].str("consumerId")
	byConsumer := map[string]string{"consumerId": consumer}

	if err := b.peer.SetConsumerPaused(consumer, true); err != nil {
		t.Fatal(err)
	}
	if err := a.peer.SetProducerPaused(vid, true); err != nil {
		t.Fatal(err)
	}
	if err := b.peer.SetConsumerPaused(consumer, false); err != nil {
		t.Fatal(err)
	}
	if n := count(b.sink.all(), "consumerPaused", byConsumer); n != 1 {
		t.Errorf("Bob paused his consumer, then Ann paused her producer: Bob got %d consumerPaused, want 1 "+
			"(SetProducerPaused skips consumers paused by their own peer, so Bob, having resumed his consumer, "+
			"believes media flows while the producer is paused)", n)
	}
	if err := a.peer.SetProducerPaused(vid, false); err != nil {
		t.Fatal(err)
	}
	if n := count(b.sink.all(), "consumerResumed", byConsumer); n != 1 {
		t.Errorf("Bob got %d consumerResumed after Ann resumed, want 1", n)
	}
}

// TestProduceBadSDPKeepsSendTransport: protocol.md says of badSdp "the
// transport keeps its previous state". A renegotiation offer that parses
// but cannot be applied must not wedge the send transport.
func TestProduceBadSDPKeepsSendTransport(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "badsdp", "Ann", "audio:mic", "video:cam")
	b, _ := joinClient(t, m, "badsdp", "Bob")
	a.peer.Start()
	b.peer.Start()
	audio := a.mustPublish("audio:mic")
	b.waitMedia(b.newConsumers(1)[audio["audio:mic"].ProducerID].str("consumerId"))

	offer, reqs, tracks := a.prepareOffer("video:cam")
	noUfrag := dropLines(offer, "a=ice-ufrag:")
	if _, _, err := a.peer.Produce(noUfrag, reqs); !errors.Is(err, sfu.ErrBadSDP) {
		t.Fatalf("Produce of an offer without ice-ufrag: %v, want sfu.ErrBadSDP", err)
	}
	if got := producersOf(t, a.peer); len(got) != 1 {
		t.Errorf("producers after the refused offer: %+v, want audio:mic alone", got)
	}
	answer, infos, err := a.peer.Produce(offer, reqs)
	if err != nil {
		t.Fatalf("the intact offer after a refused one: %v; want it applied "+
			"(Publisher.Negotiate leaves the refused offer as remote description instead of rolling it back, "+
			"so every later produce of this peer fails)", err)
	}
	a.applyAnswer(answer, tracks)
	prods := map[string]ProducerInfo{"audio:mic": audio["audio:mic"], "video:cam": infos[0]}
	checkConsumers(t, b, a, prods, b.newConsumers(2))
}

// TestRefusedAnswerKeepsRecvTransport: an answer the server refuses
// (badSdp) must leave the recv transport able to negotiate again; the
// protocol's way out is restartIce, which "gets a fresh offer and the old
// one is abandoned". The same state is reached without any fault of the
// client when a consumer is closed while its answer is being applied
// (Pion's Bind of the closed DownTrack fails).
func TestRefusedAnswerKeepsRecvTransport(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "refused", "Ann", "audio:mic", "video:cam")
	b, _ := joinClient(t, m, "refused", "Bob")
	a.peer.Start()
	b.peer.Start()
	audio := a.mustPublish("audio:mic")["audio:mic"]
	b.waitMedia(b.newConsumers(1)[audio.ProducerID].str("consumerId"))

	b.holdOffers()
	cam := a.mustPublish("video:cam")["video:cam"]
	eventually(t, "Bob to get the offer of the camera", func() bool { return b.heldOffers() == 1 })
	o := b.takeHeldOffer()
	if err := b.answerMangled(o.sdp, o.version, func(sdp string) string { return dropLines(sdp, "a=ice-ufrag:") }); !errors.Is(err, sfu.ErrBadSDP) {
		t.Fatalf("answer without ice-ufrag: %v, want sfu.ErrBadSDP", err)
	}

	mark := len(b.sink.all())
	b.peer.RestartICE()
	b.sink.waitForWithin(t, 3*time.Second,
		"an offer after restartIce that follows a refused answer (none comes: SetAnswer keeps the Subscriber "+
			"awaiting an answer when Pion refuses it after changing state, and RestartICE only rolls back an offer "+
			"in have-local-offer, so the recv transport never offers again)",
		func(notes []note, _ bool) bool { return indexOf(notes, mark, "offer", nil) >= 0 })
	nc := b.newConsumers(2)[cam.ProducerID]
	b.waitMedia(nc.str("consumerId"))
}

// mediaStarted reports whether the SFU receives the media of producer id.
// onTrack sets it and subscribes in one locked section, so once it is
// set, the subscriptions the rules give are made.
func mediaStarted(p *Peer, id string) bool {
	r := p.room
	r.mu.Lock()
	defer r.mu.Unlock()
	prod := p.producers[id]
	return prod != nil && prod.up != nil
}

func TestPullModeSubscribesNobody(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServePull, time.Minute)
	a, _ := joinClient(t, m, "pull", "Ann", "audio:mic", "video:cam")
	b, _ := joinClient(t, m, "pull", "Bob")
	if mode := a.peer.Room().Mode(); mode != config.ServePull {
		t.Fatalf("room mode %q, want Pull", mode)
	}
	a.peer.Start()
	b.peer.Start()
	prods := a.mustPublish("audio:mic", "video:cam")
	for src, prod := range prods {
		if n := count(b.sink.all(), "newProducer", map[string]string{"producerId": prod.ProducerID, "source": src}); n != 1 {
			t.Errorf("Bob got %d newProducer for %s, want 1 (Pull still announces producers)", n, src)
		}
		eventually(t, src+" media to reach the SFU", func() bool { return mediaStarted(a.peer, prod.ProducerID) })
	}
	waitCounts(t, m, [4]int{1, 2, 2, 0})
	c, _ := joinClient(t, m, "pull", "Cid")
	c.peer.Start()
	waitCounts(t, m, [4]int{1, 3, 2, 0})
	for _, cl := range []*testClient{a, b, c} {
		if n := count(cl.sink.all(), "newConsumer", nil); n != 0 {
			t.Errorf("%s got %d newConsumer in a Pull room", cl.name, n)
		}
	}
}
