package room

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/config"
)

// The rules with roles, invitations and pulls, as a table.
func TestRoleRules(t *testing.T) {
	t.Parallel()
	mk := func(id string, role auth.Role, invited, pulled []string) *Peer {
		p := &Peer{id: id, role: role, sources: []string{"audio:mic", "video:cam"}, invited: map[string]bool{}, pulled: map[string]bool{}}
		for _, s := range invited {
			p.invited[s] = true
		}
		for _, k := range pulled {
			p.pulled[k] = true
		}
		return p
	}
	admin := mk("admin", auth.RoleAdmin, nil, nil)
	student := mk("student", auth.RoleNormal, nil, nil)
	invitedStudent := mk("invited", auth.RoleNormal, []string{"video:cam"}, nil)
	anonymous := mk("anon", "", nil, nil)
	recorder := mk("recorder", auth.RoleRecorder, nil, nil)
	puller := mk("puller", auth.RoleNormal, nil, []string{"admin/video:cam"})

	publish := []struct {
		mode   config.ServeMode
		peer   *Peer
		source string
		want   bool
	}{
		{config.ServeInvite, admin, "video:cam", true},
		{config.ServeInvite, student, "video:cam", false},
		{config.ServeInvite, invitedStudent, "video:cam", true},
		{config.ServeInvite, invitedStudent, "audio:mic", false}, // invited to the camera only
		{config.ServeInvite, anonymous, "audio:mic", false},
		{config.ServeInvite, admin, "video:screen", false}, // not declared
		{config.ServeOpen, recorder, "audio:mic", false},
		{config.ServeOpen, anonymous, "audio:mic", true},
		{config.ServePull, student, "audio:mic", true},
	}
	for _, tt := range publish {
		if got := mayPublish(tt.mode, tt.peer, tt.source); got != tt.want {
			t.Errorf("mayPublish(%s, %s, %s) = %v, want %v", tt.mode, tt.peer.id, tt.source, got, tt.want)
		}
	}

	cam := &Producer{source: "video:cam", peer: admin}
	mic := &Producer{source: "audio:mic", peer: admin}
	subscribe := []struct {
		mode config.ServeMode
		sub  *Peer
		prod *Producer
		want bool
	}{
		{config.ServePull, puller, cam, true},
		{config.ServePull, puller, mic, false}, // pulled the camera only
		{config.ServePull, student, cam, false},
		{config.ServeInvite, student, cam, true},
		{config.ServeInvite, admin, cam, false}, // its own
		{config.ServeOpen, recorder, cam, true},
	}
	for _, tt := range subscribe {
		if got := autoSubscribe(tt.mode, tt.sub, tt.prod); got != tt.want {
			t.Errorf("autoSubscribe(%s, %s, %s) = %v, want %v", tt.mode, tt.sub.id, tt.prod.source, got, tt.want)
		}
	}

	for _, tt := range []struct {
		mode config.ServeMode
		peer *Peer
		want bool
	}{
		{config.ServeInvite, admin, true},
		{config.ServeInvite, student, false},
		{config.ServeOpen, admin, false},
		{config.ServeInvite, anonymous, false},
	} {
		if got := mayInvite(tt.mode, tt.peer); got != tt.want {
			t.Errorf("mayInvite(%s, %s) = %v, want %v", tt.mode, tt.peer.id, got, tt.want)
		}
	}
}

// Invite mode: a student's camera reaches nobody until the teacher invites
// it; a raised hand reaches the teacher; deinvite closes the producer.
func TestInviteFlow(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeInvite, time.Minute)
	teacher, _ := joinClientAs(t, m, "invite", "Teacher", auth.RoleAdmin, "audio:mic")
	student, _ := joinClientAs(t, m, "invite", "Student", auth.RoleNormal, "video:cam")
	other, _ := joinClientAs(t, m, "invite", "Other", auth.RoleNormal, "video:cam")
	teacher.peer.Start()
	student.peer.Start()

	// (A refused offer leaves the test client's send transport waiting for
	// an answer, so the refusal is shown with another student.)
	if _, err := other.publish("video:cam"); !errors.Is(err, ErrSourceNotAllowed) {
		t.Fatalf("uninvited camera: %v, want ErrSourceNotAllowed", err)
	}
	if err := student.peer.Invite(teacher.peer.ID(), []string{"audio:mic"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("a student inviting: %v, want ErrForbidden", err)
	}
	if err := student.peer.RequestProduce([]string{"video:cam"}); err != nil {
		t.Fatal(err)
	}
	teacher.sink.waitFor(t, "the raised hand at the teacher", func(notes []note, _ bool) bool {
		return indexOf(notes, 0, "requestProduce", map[string]string{"peerId": student.peer.ID()}) >= 0
	})

	if err := teacher.peer.Invite(student.peer.ID(), []string{"video:cam"}); err != nil {
		t.Fatal(err)
	}
	student.sink.waitFor(t, "produceSources at the student", func(notes []note, _ bool) bool {
		return indexOf(notes, 0, "produceSources", nil) >= 0
	})
	cam := student.mustPublish("video:cam")["video:cam"]
	consumer := teacher.newConsumers(1)[cam.ProducerID]
	teacher.waitMedia(consumer.str("consumerId"))

	if err := teacher.peer.Deinvite(student.peer.ID(), []string{"video:cam"}); err != nil {
		t.Fatal(err)
	}
	teacher.sink.waitFor(t, "the camera's consumer closed at the teacher", func(notes []note, _ bool) bool {
		return indexOf(notes, 0, "consumerClosed", map[string]string{"consumerId": consumer.str("consumerId")}) >= 0
	})
	student.sink.waitFor(t, "closeSources and producerClosed at the student", func(notes []note, _ bool) bool {
		return indexOf(notes, 0, "closeSources", nil) >= 0 &&
			indexOf(notes, 0, "producerClosed", map[string]string{"producerId": cam.ProducerID}) >= 0
	})
	if _, err := student.publish("video:cam"); !errors.Is(err, ErrSourceNotAllowed) {
		t.Errorf("camera after deinvite: %v, want ErrSourceNotAllowed", err)
	}
}

// Pull mode: nothing arrives until asked; then exactly what was pulled,
// and a peer that does not publish a pulled source is asked to.
func TestPullFlow(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServePull, time.Minute)
	a, _ := joinClient(t, m, "pulls", "Ann", "audio:mic", "video:cam", "video:screen")
	b, _ := joinClient(t, m, "pulls", "Bob")
	a.peer.Start()
	b.peer.Start()
	prods := a.mustPublish("audio:mic", "video:cam")
	eventually(t, "Ann's media at the SFU", func() bool {
		return mediaStarted(a.peer, prods["audio:mic"].ProducerID) && mediaStarted(a.peer, prods["video:cam"].ProducerID)
	})
	if n := count(b.sink.all(), "newConsumer", nil); n != 0 {
		t.Fatalf("Bob got %d consumers before pulling", n)
	}
	if err := b.peer.Pull(a.peer.ID(), []string{"video:cam", "video:screen"}); err != nil {
		t.Fatal(err)
	}
	consumer := b.newConsumers(1)[prods["video:cam"].ProducerID]
	b.waitMedia(consumer.str("consumerId"))
	a.sink.waitFor(t, "Ann asked to share her screen", func(notes []note, _ bool) bool {
		return indexOf(notes, 0, "produceSources", map[string]string{"by": b.peer.ID()}) >= 0
	})
	if n := count(b.sink.all(), "newConsumer", nil); n != 1 {
		t.Errorf("Bob has %d consumers, want only the pulled camera", n)
	}
	if err := b.peer.Pull("nobody", []string{"video:cam"}); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("pull from an unknown peer: %v", err)
	}
}

// The recorder receives everything, even in a Pull room, and nobody sees it.
func TestRecorderInvisibleReceivesAll(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServePull, time.Minute)
	a, _ := joinClient(t, m, "rec", "Ann", "video:cam")
	a.peer.Start()
	rec, others := joinClientAs(t, m, "rec", "Recorder", auth.RoleRecorder, "video:cam")
	rec.peer.Start()
	if len(others) != 1 || others[0].PeerID != a.peer.ID() {
		t.Errorf("the recorder should see Ann: %+v", others)
	}
	b, bOthers := joinClient(t, m, "rec", "Bob")
	b.peer.Start()
	for _, o := range bOthers {
		if o.PeerID == rec.peer.ID() {
			t.Error("Bob's peer list shows the recorder")
		}
	}
	cam := a.mustPublish("video:cam")["video:cam"]
	consumer := rec.newConsumers(1)[cam.ProducerID]
	rec.waitMedia(consumer.str("consumerId"))
	if _, err := rec.publish("video:cam"); !errors.Is(err, ErrSourceNotAllowed) {
		t.Errorf("the recorder publishing: %v, want ErrSourceNotAllowed", err)
	}
	rec.peer.Leave()
	for _, c := range []*testClient{a, b} {
		for _, n := range c.sink.all() {
			if (n.Method == "peerJoinRoom" || n.Method == "peerLeaveRoom") && n.str("peerId") == rec.peer.ID() {
				t.Errorf("%s was told %s of the recorder", c.name, n.Method)
			}
		}
	}
	for _, o := range a.peer.Others() {
		if o.PeerID == rec.peer.ID() {
			t.Error("Others() lists the recorder")
		}
	}
}

// A room's own limits: MaxPublishers refuses a second publisher with
// ErrRoomFull; MaxPeers refuses a peer over the limit (not the recorder).
func TestRoomLimits(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	if _, err := m.CreateRoom("limits", Settings{MaxPeers: 2, MaxPublishers: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateRoom("limits", Settings{}); !errors.Is(err, ErrRoomExists) {
		t.Errorf("second create: %v", err)
	}
	a, _ := joinClient(t, m, "limits", "Ann", "audio:mic")
	b, _ := joinClient(t, m, "limits", "Bob", "audio:mic")
	a.peer.Start()
	b.peer.Start()
	a.mustPublish("audio:mic")
	if _, err := b.publish("audio:mic"); !errors.Is(err, ErrRoomFull) {
		t.Errorf("second publisher: %v, want ErrRoomFull", err)
	}
	if _, _, err := m.Join("limits", PeerParams{DisplayName: "Cid", Sink: newRecSink()}); !errors.Is(err, ErrRoomFull) {
		t.Errorf("third peer: %v, want ErrRoomFull", err)
	}
	rec, _ := joinClientAs(t, m, "limits", "Recorder", auth.RoleRecorder)
	if rec.peer == nil {
		t.Error("the recorder was refused by the peer limit")
	}
	if _, err := m.CreateRoom("bad", Settings{ServeMode: "Lecture"}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("bad mode: %v", err)
	}
}

// The node's limits: rooms per node, peers per room (a room's own lower
// limit wins, a higher one does not), producers per peer.
func TestNodeLimits(t *testing.T) {
	t.Parallel()
	m := NewManager(Params{Engine: newTestEngine(t), ServeMode: config.ServeOpen, EmptyGrace: time.Minute,
		MaxRooms: 2, MaxPeersPerRoom: 2, MaxProducersPerPeer: 1})
	t.Cleanup(func() { m.Drain("serverShutdown") })
	if _, err := m.CreateRoom("wide", Settings{MaxPeers: 5}); err != nil {
		t.Fatal(err)
	}
	a, _ := joinClient(t, m, "wide", "Ann", "audio:mic", "video:cam")
	b, _ := joinClient(t, m, "wide", "Bob", "audio:mic", "video:cam")
	if _, _, err := m.Join("wide", PeerParams{DisplayName: "Cid", Sink: newRecSink()}); !errors.Is(err, ErrRoomFull) {
		t.Errorf("a third peer where the node allows 2 and the room 5: %v, want ErrRoomFull", err)
	}
	joinClient(t, m, "second", "Dan")
	if _, _, err := m.Join("third", PeerParams{DisplayName: "Eve", Sink: newRecSink()}); !errors.Is(err, ErrNodeFull) {
		t.Errorf("a third room by join: %v, want ErrNodeFull", err)
	}
	if _, err := m.CreateRoom("third", Settings{}); !errors.Is(err, ErrNodeFull) {
		t.Errorf("a third room by the API: %v, want ErrNodeFull", err)
	}
	a.peer.Start()
	if _, err := a.publish("audio:mic", "video:cam"); !errors.Is(err, ErrTooManyProducers) {
		t.Errorf("two producers where one is allowed: %v, want ErrTooManyProducers", err)
	}
	b.peer.Start()
	b.mustPublish("audio:mic")
	if _, err := b.publish("video:cam"); !errors.Is(err, ErrTooManyProducers) {
		t.Errorf("a second producer later: %v, want ErrTooManyProducers", err)
	}
}

// An admin mutes a student's microphone for everyone; a student may not.
func TestAdminMutesPeer(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	teacher, _ := joinClientAs(t, m, "mute", "Teacher", auth.RoleAdmin)
	student, _ := joinClientAs(t, m, "mute", "Student", auth.RoleNormal, "audio:mic")
	teacher.peer.Start()
	student.peer.Start()
	mic := student.mustPublish("audio:mic")["audio:mic"]
	teacher.newConsumers(1)
	if err := student.peer.MutePeer(teacher.peer.ID(), "audio:mic", true); !errors.Is(err, ErrForbidden) {
		t.Errorf("a student muting: %v", err)
	}
	if err := teacher.peer.MutePeer(student.peer.ID(), "video:cam", true); !errors.Is(err, ErrUnknownProducer) {
		t.Errorf("muting a source not published: %v", err)
	}
	if err := teacher.peer.MutePeer(student.peer.ID(), "audio:mic", true); err != nil {
		t.Fatal(err)
	}
	teacher.sink.waitFor(t, "consumerPaused at the teacher", func(notes []note, _ bool) bool {
		return indexOf(notes, 0, "consumerPaused", nil) >= 0
	})
	student.sink.waitFor(t, "producerPaused at the student", func(notes []note, _ bool) bool {
		return indexOf(notes, 0, "producerPaused", map[string]string{"producerId": mic.ProducerID, "by": teacher.peer.ID()}) >= 0
	})
}

// Peers are told the class is being recorded while a recorder is in the
// room: in their joinRoom state (Peer.Recording) and by `recording` as it
// starts and stops, once each however many recorders come and go.
func TestPeersToldOfRecording(t *testing.T) {
	t.Parallel()
	m := newTestManager(t, config.ServeOpen, time.Minute)
	a, _ := joinClient(t, m, "told", "Ann")
	a.peer.Start()
	if a.peer.Recording() {
		t.Error("Ann told of a recording before any recorder came")
	}
	rec1, _ := joinClientAs(t, m, "told", "Recorder", auth.RoleRecorder)
	rec1.peer.Start()
	b, _ := joinClient(t, m, "told", "Bob")
	b.peer.Start()
	if !a.peer.Recording() || !b.peer.Recording() {
		t.Errorf("with a recorder in the room: Ann %v, Bob (joined after it) %v; want both recording", a.peer.Recording(), b.peer.Recording())
	}
	rec2, _ := joinClientAs(t, m, "told", "Recorder 2", auth.RoleRecorder)
	rec2.peer.Start()
	rec1.peer.Leave()
	if !a.peer.Recording() {
		t.Error("Ann not recorded any more while a second recorder stays")
	}
	rec2.peer.Leave()
	if a.peer.Recording() || b.peer.Recording() {
		t.Error("still recording after both recorders left")
	}
	var got []string
	for _, n := range ofMethod(a.sink.all(), "recording") {
		got = append(got, fmt.Sprint(n.Data["active"]))
	}
	if want := []string{"true", "false"}; !slices.Equal(got, want) {
		t.Errorf("Ann was told recording %v, want %v", got, want)
	}
	got = got[:0]
	for _, n := range ofMethod(b.sink.all(), "recording") {
		got = append(got, fmt.Sprint(n.Data["active"]))
	}
	if want := []string{"false"}; !slices.Equal(got, want) {
		t.Errorf("Bob (joined during the recording) was told recording %v, want %v", got, want)
	}
	for _, n := range rec2.sink.all() {
		if n.Method == "recording" {
			t.Error("a recorder was told of the recording")
		}
	}
}
