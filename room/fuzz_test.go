package room

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/sfu"
)

// fuzzRoomID is the one room the sequences play in; it may close and
// start again within one.
const fuzzRoomID = "fz"

const (
	fuzzMaxOps     = 32
	fuzzMaxHandles = 8
	fuzzMaxMLines  = 8
	// fuzzStepDeadline is what any one step may take before the sequence
	// counts as deadlocked (each takes milliseconds, -race included).
	fuzzStepDeadline = 3 * time.Second
)

// fuzzSources are the sources peers declare and name; the last two are
// never declared (one is not even kind:name).
var fuzzSources = []string{"audio:mic", "video:cam", "video:screen", "audio:screen", "video:other", "smell:nose"}

var fuzzRoles = []auth.Role{auth.RoleAdmin, auth.RoleNormal, "", auth.RoleRecorder}

// FuzzRoomSequence plays sequences of requests from several peers against
// one room: joins with every role, produce (with offers made up here, no
// client transport), repeats, pulls, invitations, mutes, raised hands,
// chat, leaves, timeouts, kicks, the portal's closes and the room's own
// end, valid and not (unknown ids, twice, after leaving). After each step
// it checks the room against what the steps so far imply; at the end it
// drains the manager and looks for goroutines the input left behind.
func FuzzRoomSequence(f *testing.F) {
	for _, seed := range [][]byte{
		// Open: a teacher and a student join and publish; the student
		// leaves; the portal closes the teacher's camera.
		{0, opJoin, 0, 3, 0, opJoin, 1, 3, 0, opStart, 0, opStart, 1, opProduce, 0, 0x0a, 2, 0x01, 0x04,
			opProduce, 1, 0x05, 1, 0x04, opLeave, 1, opCloseSource, 0, 1},
		// Invite: a student's uninvited camera is refused, its raised hand
		// reaches the teacher, the invitation lets it publish once, the
		// deinvite closes it; a student may not invite.
		{2, opJoin, 0, 1, 0, opJoin, 1, 2, 0, opProduce, 1, 0x05, 1, 0x04, opRequestProduce, 1, 2, opInvite, 0, 1, 2,
			opProduce, 1, 0x05, 1, 0x04, opDeinvite, 0, 1, 2, opInvite, 1, 0, 1, opProduceAgain, 1},
		// Pull: a pull, a repeated produce, a mute by a student and by the
		// admin, chat, timeouts, then the room's grace runs out.
		{1, opJoin, 0, 3, 0, opJoin, 2, 1, 0, opProduce, 0, 0x0a, 2, 0x01, 0x04, opPull, 1, 0, 3, opProduceAgain, 0,
			opMute, 1, 0, 0, opMute, 0, 0, 0x80, opChat, 1, opTimeout, 0, opTimeout, 1, opExpire},
		// A recorder alone is refused, with a room it is invisible; one
		// user joins twice and replaces itself; a kick; requests after.
		{0, opJoin, 3, 0, 0, opCreateRoom, 2, 0, opJoin, 3, 0, 0, opJoin, 1, 1, 1, opJoin, 1, 1, 1, opKick, 1,
			opChat, 1, opMute, 0, 2, 0, opLeave, 1, opCloseRoom, opJoin, 0, 1, 0},
		// Limits: two peers at most, one publisher; bad offers, unknown
		// consumers, transports there are not.
		{0, opCreateRoom, 0, 0x12, opJoin, 1, 1, 0, opJoin, 1, 1, 0, opJoin, 1, 1, 0, opProduce, 0, 0x01, 1, 0x00,
			opProduce, 1, 0x01, 1, 0x00, opBadProduce, 0, 1, opConsumer, 0, 3, opConsumer, 1, 0x7f, opTransport, 0, 0,
			opTransport, 0, 1, opExpire},
		// Simulcast, a codec the engine does not take, a mid not offered.
		{0, opJoin, 1, 0xf, 0, opProduce, 0, 0x25, 1, 0x04, opProduce, 0, 0x15, 2, 0x08, 0x03, opPauseProducer, 0, 0x40,
			opCloseProducer, 0, 0, opCloseProducer, 0, 0},
	} {
		f.Add(seed)
	}
	engine := newTestEngine(f)
	warmUp(f, engine)
	f.Fuzz(func(t *testing.T, data []byte) {
		ignore := goleak.IgnoreCurrent()
		in := &fuzzInput{data: data}
		rf := newRoomFuzz(t, engine, [...]config.ServeMode{config.ServeOpen, config.ServePull, config.ServeInvite}[in.byte()%3])
		for step := 0; step < fuzzMaxOps && in.more(); step++ {
			op := in.byte() % byte(len(roomOps))
			desc := rf.run(step, func() string { return roomOps[op](rf, in) })
			rf.check(desc)
		}
		rf.runStep("drain", func() { rf.m.Drain("serverShutdown") })
		rf.checkDrained()
		if err := goleak.Find(ignore); err != nil {
			t.Fatalf("goroutines left after the manager drained, after %s: %v", rf.log(), err)
		}
	})
}

// warmUp makes and closes a publisher once, so that what the engine starts
// on first use is not taken for a leak of the first input.
func warmUp(f *testing.F, e *sfu.Engine) {
	m := NewManager(Params{Engine: e, EmptyGrace: time.Minute})
	p, _, err := m.Join("warm", PeerParams{DisplayName: "warm", Sources: []string{"audio:mic"}, Sink: newRecSink()})
	if err != nil {
		f.Fatal(err)
	}
	offer := fuzzOffer(1, []fuzzMLine{{mid: "0", kind: "audio"}})
	if _, _, err := p.Produce(offer, []ProduceRequest{{Mid: "0", Source: "audio:mic"}}); err != nil {
		f.Fatalf("warm-up produce: %v", err)
	}
	m.Drain("serverShutdown")
}

// fuzzInput reads the fuzz input a byte at a time, zeros after its end.
type fuzzInput struct {
	data []byte
	pos  int
}

func (in *fuzzInput) more() bool { return in.pos < len(in.data) }

func (in *fuzzInput) byte() byte {
	if in.pos >= len(in.data) {
		return 0
	}
	b := in.data[in.pos]
	in.pos++
	return b
}

// sources picks sources by the bits of one byte.
func (in *fuzzInput) sources(n int) []string {
	b := in.byte()
	var out []string
	for i := range n {
		if b&(1<<i) != 0 {
			out = append(out, fuzzSources[i])
		}
	}
	return out
}

// fuzzPeer is one peer of a sequence, and what the sequence expects of it.
type fuzzPeer struct {
	peer   *Peer
	sink   *recSink
	role   auth.Role
	userID string
	live   bool // by the steps so far, in the room now
	// notesAtLeave is how many notifications it had when it left: it gets
	// none after (but transport chatter and timed ones).
	notesAtLeave int
	// offered are the m-lines of its send transport so far, in order.
	offered   []fuzzMLine
	version   int
	lastOffer string
	lastReqs  []ProduceRequest
}

type fuzzMLine struct {
	mid, kind string
	codec     int // 0 the engine's, 1 one it does not take, 2 simulcast
}

// roomFuzz plays one sequence.
type roomFuzz struct {
	t       *testing.T
	m       *Manager
	mode    config.ServeMode // the manager's default
	handles []*fuzzPeer
	steps   []string
	// what the sequence expects of the room: its mode and limits while live
	roomMode      config.ServeMode
	maxPeers      int
	maxPublishers int
	roomLive      bool
	// stepping: a step runs on its own goroutine (runStep), where a
	// failure ends that goroutine rather than the test's.
	stepping bool
}

func newRoomFuzz(t *testing.T, e *sfu.Engine, mode config.ServeMode) *roomFuzz {
	m := NewManager(Params{Engine: e, ServeMode: mode, EmptyGrace: time.Minute})
	return &roomFuzz{t: t, m: m, mode: mode}
}

func (rf *roomFuzz) log() string { return strings.Join(rf.steps, "; ") }

// run runs one step with a deadline and records what it was.
func (rf *roomFuzz) run(step int, fn func() string) string {
	var desc string
	rf.runStep(fmt.Sprintf("step %d", step), func() { desc = fn() })
	rf.steps = append(rf.steps, desc)
	return desc
}

// runStep fails the input when fn does not return within the deadline.
func (rf *roomFuzz) runStep(what string, fn func()) {
	done := make(chan struct{})
	rf.stepping = true
	go func() {
		defer close(done)
		fn()
	}()
	timer := time.NewTimer(fuzzStepDeadline)
	defer timer.Stop()
	select {
	case <-done:
		rf.stepping = false
		if rf.t.Failed() {
			rf.t.FailNow()
		}
	case <-timer.C:
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		rf.t.Fatalf("%s did not return within %v (deadlock?) after %s\n%s", what, fuzzStepDeadline, rf.log(), buf)
	}
}

// errorf fails the input, saying which steps led there.
func (rf *roomFuzz) errorf(format string, a ...any) {
	rf.t.Helper()
	rf.t.Errorf("%s\nsteps: %s", fmt.Sprintf(format, a...), rf.log())
	if rf.stepping {
		runtime.Goexit() // the step's goroutine; runStep fails the input
	}
	rf.t.FailNow()
}

// expect checks an error against the one the model predicts (nil: none).
func (rf *roomFuzz) expect(desc string, got, want error) {
	rf.t.Helper()
	if (want == nil) != (got == nil) || (want != nil && !errors.Is(got, want)) {
		rf.errorf("%s: error %v, want %v", desc, got, want)
	}
}

// handle picks one of the sequence's peers (nil when there is none).
func (rf *roomFuzz) handle(in *fuzzInput) *fuzzPeer {
	if len(rf.handles) == 0 {
		in.byte()
		return nil
	}
	return rf.handles[int(in.byte())%len(rf.handles)]
}

// targetID names a peer of the sequence, or one that never was.
func (rf *roomFuzz) targetID(in *fuzzInput) (string, *fuzzPeer) {
	b := in.byte()
	if len(rf.handles) == 0 || int(b) >= 4*len(rf.handles) {
		return "nobody", nil
	}
	h := rf.handles[int(b)%len(rf.handles)]
	return h.peer.ID(), h
}

func (rf *roomFuzz) liveHandles() []*fuzzPeer {
	var out []*fuzzPeer
	for _, h := range rf.handles {
		if h.live {
			out = append(out, h)
		}
	}
	return out
}

// setLeft records that h left in this step.
func (rf *roomFuzz) setLeft(h *fuzzPeer) {
	h.live = false
	h.notesAtLeave = -1 // counted once the step is over (check)
}

// roomOps are the steps; each reads its arguments and returns what it did.
var roomOps = []func(*roomFuzz, *fuzzInput) string{
	opJoin: (*roomFuzz).join, opCreateRoom: (*roomFuzz).createRoom, opStart: (*roomFuzz).start,
	opProduce: (*roomFuzz).produce, opProduceAgain: (*roomFuzz).produceAgain, opBadProduce: (*roomFuzz).badProduce,
	opCloseProducer: (*roomFuzz).closeProducer, opPauseProducer: (*roomFuzz).pauseProducer,
	opPull: (*roomFuzz).pull, opInvite: (*roomFuzz).invite, opDeinvite: (*roomFuzz).deinvite,
	opMute: (*roomFuzz).mutePeer, opRequestProduce: (*roomFuzz).requestProduce, opChat: (*roomFuzz).chat,
	opLeave: (*roomFuzz).leave, opTimeout: (*roomFuzz).timeout, opKick: (*roomFuzz).kick,
	opCloseSource: (*roomFuzz).closeSource, opCloseRoom: (*roomFuzz).closeRoom, opExpire: (*roomFuzz).expire,
	opConsumer: (*roomFuzz).consumerOps, opTransport: (*roomFuzz).transportOps,
}

const (
	opJoin = iota
	opCreateRoom
	opStart
	opProduce
	opProduceAgain
	opBadProduce
	opCloseProducer
	opPauseProducer
	opPull
	opInvite
	opDeinvite
	opMute
	opRequestProduce
	opChat
	opLeave
	opTimeout
	opKick
	opCloseSource
	opCloseRoom
	opExpire
	opConsumer
	opTransport
)

// join: role, declared sources, user id (0: anonymous; users 1-3 replace
// their own earlier peer).
func (rf *roomFuzz) join(in *fuzzInput) string {
	role := fuzzRoles[in.byte()%byte(len(fuzzRoles))]
	sources := in.sources(4)
	user := ""
	if u := in.byte() % 4; u > 0 {
		user = fmt.Sprintf("user%d", u)
	}
	desc := fmt.Sprintf("join(%q, %v, %q)", role, sources, user)
	if len(rf.handles) >= fuzzMaxHandles {
		return desc + " skipped"
	}
	var want error
	var replaced *fuzzPeer
	visible := 0
	for _, h := range rf.liveHandles() {
		if user != "" && h.userID == user {
			replaced = h
		} else if h.role != auth.RoleRecorder {
			visible++
		}
	}
	switch {
	case !rf.roomLive && role == auth.RoleRecorder:
		want = ErrNoRoom
	case rf.roomLive && rf.maxPeers > 0 && role != auth.RoleRecorder && visible >= rf.maxPeers:
		want = ErrRoomFull
	}
	sink := newRecSink()
	p, others, err := rf.m.Join(fuzzRoomID, PeerParams{Role: role, UserID: user, DisplayName: "p" + fmt.Sprint(len(rf.handles)), Sources: sources, Sink: sink})
	rf.expect(desc, err, want)
	if err != nil {
		return desc + " refused"
	}
	if !rf.roomLive {
		rf.roomLive, rf.roomMode, rf.maxPeers, rf.maxPublishers = true, rf.mode, 0, 0
	}
	if replaced != nil {
		rf.setLeft(replaced)
	}
	wantOthers := 0
	for _, h := range rf.liveHandles() {
		if h.role != auth.RoleRecorder {
			wantOthers++
		}
	}
	if len(others) != wantOthers {
		rf.errorf("%s: told of %d others, want %d: %+v", desc, len(others), wantOthers, others)
	}
	rf.handles = append(rf.handles, &fuzzPeer{peer: p, sink: sink, role: role, userID: user, live: true})
	return desc
}

// createRoom: mode (a bad one too) and limits from one byte each.
func (rf *roomFuzz) createRoom(in *fuzzInput) string {
	modes := []config.ServeMode{"", config.ServeOpen, config.ServePull, config.ServeInvite, "Lecture"}
	mode := modes[int(in.byte())%len(modes)]
	lim := in.byte()
	s := Settings{ServeMode: mode, MaxPeers: int(lim&0x0f) % 4, MaxPublishers: int(lim>>4) % 3}
	if lim == 0xff {
		s.MaxPeers = -1
	}
	desc := fmt.Sprintf("createRoom(%+v)", s)
	var want error
	switch {
	case mode == "Lecture" || s.MaxPeers < 0:
		want = ErrBadRequest
	case rf.roomLive:
		want = ErrRoomExists
	}
	_, err := rf.m.CreateRoom(fuzzRoomID, s)
	rf.expect(desc, err, want)
	if err == nil {
		if mode == "" {
			mode = rf.mode
		}
		rf.roomLive, rf.roomMode, rf.maxPeers, rf.maxPublishers = true, mode, s.MaxPeers, s.MaxPublishers
	}
	return desc
}

func (rf *roomFuzz) start(in *fuzzInput) string {
	h := rf.handle(in)
	if h == nil {
		return "start(none)"
	}
	h.peer.Start()
	return "start(" + h.peer.ID() + ")"
}

// produce offers the peer's m-lines so far and up to three new ones,
// and asks for up to three producers. Its arguments: the peer; the new
// m-lines (bits 0-1 how many, bit 2+i the kind of line i, bits 4+2i its
// codec); how many requests; a byte each (bits 0-1: the mid of the last
// m-line but that many, 3 one there is not; bits 2-4 the source).
func (rf *roomFuzz) produce(in *fuzzInput) string {
	h := rf.handle(in)
	lines, n := in.byte(), int(in.byte()%4)
	var reqs []byte
	for range n {
		reqs = append(reqs, in.byte())
	}
	if h == nil {
		return "produce(none)"
	}
	for i := range int(lines & 3) {
		if len(h.offered) >= fuzzMaxMLines {
			break
		}
		kind := [...]string{"audio", "video"}[(lines>>(2+i))&1]
		h.offered = append(h.offered, fuzzMLine{mid: fmt.Sprint(len(h.offered)), kind: kind, codec: int(lines>>(4+2*i)&3) % 3})
	}
	pr := make([]ProduceRequest, 0, len(reqs))
	for _, b := range reqs {
		mid := "9"
		if k := int(b & 3); k < 3 && len(h.offered) > 0 {
			mid = h.offered[max(0, len(h.offered)-1-k)].mid
		}
		pr = append(pr, ProduceRequest{Mid: mid, Source: fuzzSources[int(b>>2&7)%len(fuzzSources)]})
	}
	h.version++
	offer := fuzzOffer(h.version, h.offered)
	desc := fmt.Sprintf("produce(%s, %d m-lines, %+v)", h.peer.ID(), len(h.offered), pr)
	before := rf.producerIDs(h)
	_, infos, err := h.peer.Produce(offer, pr)
	h.lastOffer, h.lastReqs = offer, pr
	rf.checkProduced(desc, h, before, pr, infos, err)
	return desc
}

// produceAgain sends the peer's last offer again, as a repeat.
func (rf *roomFuzz) produceAgain(in *fuzzInput) string {
	h := rf.handle(in)
	if h == nil || h.lastOffer == "" {
		return "produceAgain(none)"
	}
	desc := fmt.Sprintf("produceAgain(%s, %+v)", h.peer.ID(), h.lastReqs)
	before := rf.producerIDs(h)
	_, infos, err := h.peer.ProduceAgain(h.lastOffer, h.lastReqs)
	if err != nil && !errors.Is(err, ErrLeft) && !errors.Is(err, sfu.ErrBadSDP) {
		rf.errorf("%s: error %v, want none, ErrLeft or sfu.ErrBadSDP", desc, err)
	}
	if after := rf.producerIDs(h); !slices.Equal(before, after) {
		rf.errorf("%s: producers %v became %v; a repeat creates none", desc, before, after)
	}
	for _, info := range infos {
		if !slices.Contains(before, info.ProducerID) {
			rf.errorf("%s: lists producer %s, which is not open", desc, info.ProducerID)
		}
	}
	return desc
}

// badProduce sends an offer that is not SDP, or one without credentials.
func (rf *roomFuzz) badProduce(in *fuzzInput) string {
	h := rf.handle(in)
	kind := in.byte()
	if h == nil {
		return "badProduce(none)"
	}
	offer := "v=0 this is not SDP"
	if kind&1 != 0 {
		offer = strings.ReplaceAll(fuzzOffer(h.version+1, append(slices.Clone(h.offered), fuzzMLine{mid: "x", kind: "audio"})), "a=ice-pwd:", "a=x-pwd:")
	}
	desc := fmt.Sprintf("badProduce(%s, %d)", h.peer.ID(), kind&1)
	before := rf.producerIDs(h)
	_, infos, err := h.peer.Produce(offer, []ProduceRequest{{Mid: "x", Source: "audio:mic"}})
	rf.expect(desc, err, sfu.ErrBadSDP)
	if len(infos) != 0 || !slices.Equal(before, rf.producerIDs(h)) {
		rf.errorf("%s: a refused offer changed the producers", desc)
	}
	return desc
}

// checkProduced checks what a produce returned against the rules: a
// refusal is a documented error and leaves the producers as they were;
// each producer made is open, new, and was asked for.
func (rf *roomFuzz) checkProduced(desc string, h *fuzzPeer, before []string, reqs []ProduceRequest, infos []ProducerInfo, err error) {
	rf.t.Helper()
	after := rf.producerIDs(h)
	if err != nil {
		known := []error{ErrBadRequest, ErrSourceNotAllowed, ErrSourceBusy, ErrRoomFull, ErrLeft, sfu.ErrBadSDP}
		if !slices.ContainsFunc(known, func(e error) bool { return errors.Is(err, e) }) {
			rf.errorf("%s: error %v is none the protocol names", desc, err)
		}
		if !slices.Equal(before, after) {
			rf.errorf("%s: refused (%v), yet producers %v became %v", desc, err, before, after)
		}
		return
	}
	if !h.live {
		rf.errorf("%s: a peer that left produced", desc)
	}
	if len(after) != len(before)+len(infos) || len(infos) > len(reqs) {
		rf.errorf("%s: producers %v became %v, with %d reported for %d requests", desc, before, after, len(infos), len(reqs))
	}
	for _, info := range infos {
		if slices.Contains(before, info.ProducerID) || !slices.Contains(after, info.ProducerID) ||
			!slices.Contains(reqs, ProduceRequest{Mid: info.Mid, Source: info.Source}) {
			rf.errorf("%s: reported producer %+v is not a new one asked for", desc, info)
		}
	}
}

// producerIDs are h's open producers, sorted.
func (rf *roomFuzz) producerIDs(h *fuzzPeer) []string {
	r := h.peer.room
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(h.peer.producers))
	for id := range h.peer.producers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// producerOfInput picks one of h's producers, or an id that is none.
func (rf *roomFuzz) producerOfInput(h *fuzzPeer, b byte) string {
	ids := rf.producerIDs(h)
	if len(ids) == 0 || b&0x80 != 0 {
		return "nosuchproducer"
	}
	return ids[int(b)%len(ids)]
}

func (rf *roomFuzz) closeProducer(in *fuzzInput) string {
	h := rf.handle(in)
	b := in.byte()
	if h == nil {
		return "closeProducer(none)"
	}
	id := rf.producerOfInput(h, b)
	desc := fmt.Sprintf("closeProducer(%s, %s)", h.peer.ID(), id)
	var want error
	if !slices.Contains(rf.producerIDs(h), id) {
		want = ErrUnknownProducer
	}
	rf.expect(desc, h.peer.CloseProducer(id), want)
	if slices.Contains(rf.producerIDs(h), id) {
		rf.errorf("%s: still open", desc)
	}
	return desc
}

func (rf *roomFuzz) pauseProducer(in *fuzzInput) string {
	h := rf.handle(in)
	b := in.byte()
	if h == nil {
		return "pauseProducer(none)"
	}
	id := rf.producerOfInput(h, b)
	paused := b&0x40 != 0
	desc := fmt.Sprintf("setProducerPaused(%s, %s, %v)", h.peer.ID(), id, paused)
	var want error
	if !slices.Contains(rf.producerIDs(h), id) {
		want = ErrUnknownProducer
	}
	rf.expect(desc, h.peer.SetProducerPaused(id, paused), want)
	return desc
}

// inRoom reports whether the model has target in the room with h (a
// live peer other than h).
func inRoom(h, target *fuzzPeer) bool { return target != nil && target != h && target.live }

func (rf *roomFuzz) pull(in *fuzzInput) string {
	h := rf.handle(in)
	id, target := rf.targetID(in)
	sources := in.sources(len(fuzzSources))
	if h == nil {
		return "pull(none)"
	}
	desc := fmt.Sprintf("pull(%s, %s, %v)", h.peer.ID(), id, sources)
	var want error
	switch {
	case !h.live:
		want = ErrLeft
	case !inRoom(h, target):
		want = ErrUnknownPeer
	}
	rf.expect(desc, h.peer.Pull(id, sources), want)
	return desc
}

func (rf *roomFuzz) invite(in *fuzzInput) string {
	h := rf.handle(in)
	id, target := rf.targetID(in)
	sources := in.sources(len(fuzzSources))
	if h == nil {
		return "invite(none)"
	}
	desc := fmt.Sprintf("invite(%s, %s, %v)", h.peer.ID(), id, sources)
	want := rf.inviteRefusal(h, target)
	if want == nil && !slices.ContainsFunc(sources, target.peer.declares) {
		want = ErrBadRequest
	}
	rf.expect(desc, h.peer.Invite(id, sources), want)
	return desc
}

func (rf *roomFuzz) deinvite(in *fuzzInput) string {
	h := rf.handle(in)
	id, target := rf.targetID(in)
	sources := in.sources(len(fuzzSources))
	if h == nil {
		return "deinvite(none)"
	}
	desc := fmt.Sprintf("deinvite(%s, %s, %v)", h.peer.ID(), id, sources)
	rf.expect(desc, h.peer.Deinvite(id, sources), rf.inviteRefusal(h, target))
	if target != nil && target.role != auth.RoleAdmin {
		r := target.peer.room
		r.mu.Lock()
		for _, prod := range target.peer.producers {
			if rf.roomMode == config.ServeInvite && h.role == auth.RoleAdmin && h.live && slices.Contains(sources, prod.source) {
				r.mu.Unlock()
				rf.errorf("%s: the producer of %s is still open", desc, prod.source)
			}
		}
		r.mu.Unlock()
	}
	return desc
}

// inviteRefusal is the error an invitation by h of target gets for who
// they are (nil: none).
func (rf *roomFuzz) inviteRefusal(h, target *fuzzPeer) error {
	switch {
	case !h.live:
		return ErrLeft
	case rf.roomMode != config.ServeInvite || h.role != auth.RoleAdmin:
		return ErrForbidden
	case !inRoom(h, target):
		return ErrUnknownPeer
	}
	return nil
}

func (rf *roomFuzz) mutePeer(in *fuzzInput) string {
	h := rf.handle(in)
	id, target := rf.targetID(in)
	b := in.byte()
	source, muted := fuzzSources[int(b&0x7f)%len(fuzzSources)], b&0x80 != 0
	if h == nil {
		return "mutePeer(none)"
	}
	desc := fmt.Sprintf("mutePeer(%s, %s, %s, %v)", h.peer.ID(), id, source, muted)
	var want error
	switch {
	case !h.live:
		want = ErrLeft
	case h.role != auth.RoleAdmin:
		want = ErrForbidden
	case target == nil || !target.live:
		want = ErrUnknownPeer
	case !slices.ContainsFunc(rf.sourcesOf(target), func(s string) bool { return s == source }):
		want = ErrUnknownProducer
	}
	rf.expect(desc, h.peer.MutePeer(id, source, muted), want)
	return desc
}

// sourcesOf are the sources target publishes now.
func (rf *roomFuzz) sourcesOf(target *fuzzPeer) []string {
	r := target.peer.room
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, prod := range target.peer.producers {
		out = append(out, prod.source)
	}
	return out
}

func (rf *roomFuzz) requestProduce(in *fuzzInput) string {
	h := rf.handle(in)
	sources := in.sources(len(fuzzSources))
	if h == nil {
		return "requestProduce(none)"
	}
	desc := fmt.Sprintf("requestProduce(%s, %v)", h.peer.ID(), sources)
	var want error
	switch {
	case !h.live:
		want = ErrLeft
	case rf.roomMode != config.ServeInvite:
		want = ErrForbidden
	case !slices.ContainsFunc(sources, h.peer.declares):
		want = ErrBadRequest
	}
	rf.expect(desc, h.peer.RequestProduce(sources), want)
	return desc
}

// chat: a message reaches every peer in the room (not a recorder's own,
// which sends none in practice), and none from a peer that left.
func (rf *roomFuzz) chat(in *fuzzInput) string {
	h := rf.handle(in)
	if h == nil {
		return "chat(none)"
	}
	desc := "chat(" + h.peer.ID() + ")"
	text := fmt.Sprintf("message %d", len(rf.steps))
	var want error
	if !h.live {
		want = ErrLeft
	}
	rf.expect(desc, h.peer.SendMessage(text), want)
	for _, o := range rf.handles {
		got := count(o.sink.all(), "newMessage", map[string]string{"text": text, "peerId": h.peer.ID()})
		if wantN := map[bool]int{true: 1}[h.live && o.live]; got != wantN {
			rf.errorf("%s: %s got the message %d times, want %d", desc, o.peer.ID(), got, wantN)
		}
	}
	return desc
}

func (rf *roomFuzz) leave(in *fuzzInput) string {
	h := rf.handle(in)
	if h == nil {
		return "leave(none)"
	}
	h.peer.Leave()
	if h.live {
		rf.setLeft(h)
	}
	return "leave(" + h.peer.ID() + ")"
}

func (rf *roomFuzz) timeout(in *fuzzInput) string {
	h := rf.handle(in)
	if h == nil {
		return "timeout(none)"
	}
	h.peer.TimeOut()
	if h.live {
		rf.setLeft(h)
	}
	return "timeout(" + h.peer.ID() + ")"
}

// kick, as the portal does: through the room live now.
func (rf *roomFuzz) kick(in *fuzzInput) string {
	id, target := rf.targetID(in)
	desc := "kick(" + id + ")"
	r := rf.m.Room(fuzzRoomID)
	if r == nil {
		return desc + " no room"
	}
	want := target != nil && target.live
	if got := r.Kick(id, "kicked"); got != want {
		rf.errorf("%s = %v, want %v", desc, got, want)
	}
	if want {
		rf.setLeft(target)
		if !target.sink.isClosed() {
			rf.errorf("%s: the peer's connection is still open", desc)
		}
	}
	return desc
}

// closeSource and muteSource, as the portal does.
func (rf *roomFuzz) closeSource(in *fuzzInput) string {
	id, target := rf.targetID(in)
	b := in.byte()
	source := fuzzSources[int(b&0x7f)%len(fuzzSources)]
	desc := fmt.Sprintf("portal(%s, %s, %d)", id, source, b>>6)
	r := rf.m.Room(fuzzRoomID)
	if r == nil {
		return desc + " no room"
	}
	want := target != nil && target.live && slices.Contains(rf.sourcesOf(target), source)
	var got bool
	if b&0x80 == 0 {
		got = r.CloseSource(id, source)
		if want && slices.Contains(rf.sourcesOf(target), source) {
			rf.errorf("%s: the source is still published", desc)
		}
	} else {
		got = r.MuteSource(id, source, b&0x40 != 0)
	}
	if got != want {
		rf.errorf("%s = %v, want %v", desc, got, want)
	}
	return desc
}

func (rf *roomFuzz) closeRoom(*fuzzInput) string {
	if got := rf.m.CloseRoom(fuzzRoomID, "roomClosed"); got != rf.roomLive {
		rf.errorf("closeRoom = %v, want %v", got, rf.roomLive)
	}
	rf.roomGone()
	return "closeRoom"
}

// roomGone: everyone in the room has left.
func (rf *roomFuzz) roomGone() {
	rf.roomLive = false
	for _, h := range rf.liveHandles() {
		rf.setLeft(h)
	}
}

// expire: the room's grace period ran out (its own goroutine calls the
// same); it closes when no visible peer is in it.
func (rf *roomFuzz) expire(*fuzzInput) string {
	r := rf.m.Room(fuzzRoomID)
	if r == nil {
		return "expire(no room)"
	}
	rf.m.closeIfEmpty(r)
	visible := slices.ContainsFunc(rf.liveHandles(), func(h *fuzzPeer) bool { return h.role != auth.RoleRecorder })
	if !visible {
		rf.roomGone()
	}
	return "expire"
}

// consumerOps: with no media there are no consumers: every id is unknown,
// and bad arguments are refused first.
func (rf *roomFuzz) consumerOps(in *fuzzInput) string {
	h := rf.handle(in)
	b := in.byte()
	if h == nil {
		return "consumer(none)"
	}
	id := "nosuchconsumer"
	desc := fmt.Sprintf("consumer(%s, %d)", h.peer.ID(), b)
	var err, want error = nil, ErrUnknownConsumer
	switch b % 3 {
	case 0:
		err = h.peer.SetConsumerPaused(id, b&0x80 != 0)
	case 1:
		layer := int(int8(b)) / 4
		if layer < 0 || layer >= sfu.MaxLayers {
			want = ErrBadRequest
		}
		err = h.peer.SetConsumerPreferredLayers(id, layer)
	case 2:
		side := (int(b) - 64) * 300
		if side < 0 || side > maxViewSide {
			want = ErrBadRequest
		}
		err = h.peer.SetConsumerView(id, side, side/2, b&1 == 0)
	}
	rf.expect(desc, err, want)
	return desc
}

// transportOps: answers, candidates and ICE restarts with no transport
// to take them, or junk for the one there is.
func (rf *roomFuzz) transportOps(in *fuzzInput) string {
	h := rf.handle(in)
	b := in.byte()
	if h == nil {
		return "transport(none)"
	}
	desc := fmt.Sprintf("transport(%s, %d)", h.peer.ID(), b)
	switch b % 3 {
	case 0:
		rf.expect(desc, h.peer.Answer("v=0", int(b)), ErrBadRequest) // no recv transport without consumers
	case 1:
		transport := [...]string{"send", "recv", "sideways"}[int(b>>2)%3]
		_ = h.peer.AddICECandidate(transport, webrtc.ICECandidateInit{Candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host"})
	case 2:
		h.peer.RestartICE()
	}
	return desc
}

// check compares the room with what the steps imply.
func (rf *roomFuzz) check(desc string) {
	rf.t.Helper()
	for _, h := range rf.handles {
		if h.notesAtLeave == -1 {
			h.notesAtLeave = len(h.sink.all())
		}
		rf.checkHandle(desc, h)
	}
	r := rf.m.Room(fuzzRoomID)
	if (r != nil) != rf.roomLive {
		rf.errorf("after %s: room live %v, want %v", desc, r != nil, rf.roomLive)
	}
	if r == nil {
		return
	}
	if r.Mode() != rf.roomMode {
		rf.errorf("after %s: room mode %s, want %s", desc, r.Mode(), rf.roomMode)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	live := rf.liveHandles()
	if len(r.peers) != len(live) {
		rf.errorf("after %s: the room has %d peers, want %d", desc, len(r.peers), len(live))
	}
	for _, h := range live {
		if r.peers[h.peer.ID()] != h.peer || h.peer.room != r {
			rf.errorf("after %s: %s is not in the room", desc, h.peer.ID())
		}
	}
	rf.checkRoomLocked(desc, r)
}

// checkHandle: a peer that left is out for good: no producers, no
// consumers, and no notifications but transport chatter and timed ones.
func (rf *roomFuzz) checkHandle(desc string, h *fuzzPeer) {
	rf.t.Helper()
	h.sink.mu.Lock()
	errs := h.sink.marshalErrs
	h.sink.mu.Unlock()
	if len(errs) > 0 {
		rf.errorf("after %s: notifications to %s that do not marshal: %v", desc, h.peer.ID(), errs)
	}
	if h.live {
		return
	}
	r := h.peer.room
	r.mu.Lock()
	left, prods, cons := h.peer.left, len(h.peer.producers), len(h.peer.consumers)
	r.mu.Unlock()
	if !left || prods > 0 || cons > 0 {
		rf.errorf("after %s: %s should have left: left %v, %d producers, %d consumers", desc, h.peer.ID(), left, prods, cons)
	}
	for _, n := range h.sink.all()[h.notesAtLeave:] {
		if n.Method != "iceCandidate" && n.Method != "connectionQuality" && n.Method != "activeSpeaker" {
			rf.errorf("after %s: %s got %s after it left", desc, h.peer.ID(), n)
		}
	}
}

// checkRoomLocked checks the rules on the room's own state.
func (rf *roomFuzz) checkRoomLocked(desc string, r *Room) {
	rf.t.Helper()
	recorders, visible, publishing := 0, 0, 0
	for id, p := range r.peers {
		if p.id != id || p.left || p.room != r {
			rf.errorf("after %s: room lists %s (left %v)", desc, id, p.left)
		}
		if p.role == auth.RoleRecorder {
			recorders++
		} else {
			visible++
			if p.recording != (r.recorders > 0) {
				rf.errorf("after %s: %s was last told recording=%v; %d recorders are in the room", desc, id, p.recording, r.recorders)
			}
		}
		if len(p.producers) > 0 {
			publishing++
		}
		sources, mids := map[string]bool{}, map[string]bool{}
		for prodID, prod := range p.producers {
			switch {
			case prod.id != prodID || prod.peer != p:
				rf.errorf("after %s: producer %s of %s belongs to %s", desc, prodID, id, prod.peer.id)
			case !p.declares(prod.source) || p.role == auth.RoleRecorder:
				rf.errorf("after %s: %s (%q) publishes %s, which it may not", desc, id, p.role, prod.source)
			case r.mode == config.ServeInvite && p.role != auth.RoleAdmin && !prod.invited:
				rf.errorf("after %s: %s publishes %s in an Invite room uninvited", desc, id, prod.source)
			case sources[prod.source] || mids[prod.mid]:
				rf.errorf("after %s: %s publishes %s on mid %s twice", desc, id, prod.source, prod.mid)
			}
			sources[prod.source], mids[prod.mid] = true, true
		}
	}
	if recorders != r.recorders {
		rf.errorf("after %s: the room counts %d recorders, has %d", desc, r.recorders, recorders)
	}
	if rf.maxPeers > 0 && visible > rf.maxPeers {
		rf.errorf("after %s: %d visible peers, %d at most", desc, visible, rf.maxPeers)
	}
	if rf.maxPublishers > 0 && publishing > rf.maxPublishers {
		rf.errorf("after %s: %d peers publish, %d at most", desc, publishing, rf.maxPublishers)
	}
}

// checkDrained: after Drain no room is left and every peer has left.
func (rf *roomFuzz) checkDrained() {
	rf.t.Helper()
	if rooms, peers, producers, consumers := rf.m.Counts(); rooms+peers+producers+consumers != 0 {
		rf.errorf("after drain: %d rooms, %d peers, %d producers, %d consumers", rooms, peers, producers, consumers)
	}
	for _, h := range rf.handles {
		if !h.peer.Left() {
			rf.errorf("after drain: %s has not left", h.peer.ID())
		}
	}
}

// fuzzOffer is a send transport's offer, as a browser would make it, of
// the m-lines given (all sending): codec 0 is one the engine takes, 1 one
// it does not, 2 VP8 with three simulcast layers.
func fuzzOffer(version int, lines []fuzzMLine) string {
	var b strings.Builder
	mids := make([]string, len(lines))
	for i, l := range lines {
		mids[i] = l.mid
	}
	fmt.Fprintf(&b, "v=0\r\no=- 4611731400430051336 %d IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", version)
	fmt.Fprintf(&b, "a=group:BUNDLE %s\r\na=msid-semantic: WMS\r\n", strings.Join(mids, " "))
	fp := strings.TrimSuffix(strings.Repeat("AB:", 32), ":")
	for i, l := range lines {
		pt, rtpmap := 111, "opus/48000/2"
		if l.kind == "video" {
			pt, rtpmap = 96, "VP8/90000"
		}
		if l.codec == 1 {
			pt, rtpmap = 120, "X-UNKNOWN/90000"
		}
		fmt.Fprintf(&b, "m=%s 9 UDP/TLS/RTP/SAVPF %d\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n", l.kind, pt)
		fmt.Fprintf(&b, "a=ice-ufrag:fuzz\r\na=ice-pwd:fuzzfuzzfuzzfuzzfuzzfuzz\r\na=fingerprint:sha-256 %s\r\na=setup:actpass\r\n", fp)
		fmt.Fprintf(&b, "a=mid:%s\r\na=sendonly\r\na=rtcp-mux\r\na=rtpmap:%d %s\r\n", l.mid, pt, rtpmap)
		if l.codec == 2 && l.kind == "video" {
			b.WriteString("a=rid:l send\r\na=rid:m send\r\na=rid:h send\r\na=simulcast:send l;m;h\r\n")
		} else {
			fmt.Fprintf(&b, "a=ssrc:%d cname:fuzz\r\n", 1000+i)
		}
	}
	return b.String()
}
