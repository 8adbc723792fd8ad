package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/pion/rtcp"

	"github.com/vclass/vclass/client"
	"github.com/vclass/vclass/internal/picsize"
	"github.com/vclass/vclass/recorder/mkv"
)

// Pacing of a session's writer.
const (
	tickEvery    = 20 * time.Millisecond
	flushEvery   = time.Second
	jitterWait   = 400 * time.Millisecond // for a lost packet to come back after a NACK
	quietAfter   = time.Second            // a track silent this long holds no one back
	maxHold      = 3 * time.Second        // placed frames older than this are written regardless
	keyframeWait = 500 * time.Millisecond // between two keyframe requests of a track
	maxQueued    = 20000                  // packets a track may have waiting
)

// sessionStats are a session's counters, read while it runs.
type sessionStats struct {
	bytes   atomic.Int64
	packets atomic.Uint64
	lost    atomic.Uint64
}

// session records one room through a joined client: one file per
// participant (audio and camera) and one per screen share.
type session struct {
	log   *slog.Logger
	dir   string
	start time.Time // the timeline's zero
	stats *sessionStats
	// onBytes and onLost hear of bytes written and packets lost, for metrics.
	onBytes func(int64)
	onLost  func(uint64)

	mu         sync.Mutex
	who        map[string]person // peer id -> who it is
	incoming   []*track
	closed     map[string]bool // consumer ids closed by the server
	switches   []layerSwitch   // simulcast layer switches the server told of, not yet placed
	disconnect string          // the reason the server gave for disconnecting

	// owned by run
	tracks    []*track
	files     []*pfile
	peers     map[string]*peerClock
	lastFlush time.Time
	err       error
	lastBytes int64

	files0 atomic.Pointer[[]File] // the files as of the last flush, for readers
}

// track is one received track on its way to a file.
type track struct {
	rt     *client.RemoteTrack
	peerID string
	source string
	video  bool
	group  string // camera or screen

	mu    sync.Mutex // guards in, srs, ended: the reading goroutine adds
	in    []inPacket
	spare []inPacket // the other of in's two arrays, for the next pump
	out   []outPacket
	srs   []senderReport
	ended bool // the reader or the server ended it
	drops uint64

	over         bool // ended, as run has seen it
	jb           *jitterBuffer
	asm          *assembler
	clock        trackClock
	first        time.Time
	lastArrival  time.Time
	lastKeyReq   time.Time
	reportedLost uint64
	pending      []timed
	queue        []placed
	lastPlaced   time.Duration
	placedAny    bool
	skew         [2]time.Duration // least and most a frame was placed after its arrival
	file         *pfile
	slot         int // the file's track number, 0 before the first write
	done         bool
}

type inPacket struct {
	pkt     *packet
	arrival time.Time
}

type placed struct {
	at   time.Duration
	key  bool
	data []byte
}

// person is a peer as the server names it: its display name, and the
// portal user its ticket names ("" for none).
type person struct{ name, user string }

// pfile is one output file and the tracks feeding it.
type pfile struct {
	base        string // file name without extension
	participant string // display name
	user        string // portal user (ticket sub), "" when the ticket named none
	group       string
	peerID      string // the peer it records now (a rejoin takes it over)
	w           *mkv.Writer
	start       time.Duration // timeline at the file's time zero
	slots       []fileSlot
	lastMs      map[int]int64 // per track number, the last frame written
	codecs      []string
	layers      []LayerChange
	phase       framePhase
}

// layerSwitch is a consumerLayersChanged notification and when it came.
type layerSwitch struct {
	consumerID string
	layer      int
	at         time.Time
}

type fileSlot struct {
	video bool
	codec string
	owner *track
}

func newSession(log *slog.Logger, dir string, stats *sessionStats) *session {
	return &session{
		log: log, dir: dir, stats: stats,
		who: map[string]person{}, closed: map[string]bool{}, peers: map[string]*peerClock{},
	}
}

// attach hooks the session to a client before it joins the room.
func (s *session) attach(c *client.Client) {
	c.On("peerJoinRoom", func(data json.RawMessage) {
		var p struct {
			PeerID      string `json:"peerId"`
			DisplayName string `json:"displayName"`
			UserID      string `json:"userId"`
		}
		if json.Unmarshal(data, &p) == nil {
			s.mu.Lock()
			s.who[p.PeerID] = person{p.DisplayName, p.UserID}
			s.mu.Unlock()
		}
	})
	c.On("consumerClosed", func(data json.RawMessage) {
		var n struct {
			ConsumerID string `json:"consumerId"`
		}
		if json.Unmarshal(data, &n) == nil {
			s.mu.Lock()
			s.closed[n.ConsumerID] = true
			s.mu.Unlock()
		}
	})
	c.On("consumerLayersChanged", func(data json.RawMessage) {
		var n struct {
			ConsumerID   string `json:"consumerId"`
			SpatialLayer int    `json:"spatialLayer"`
		}
		if json.Unmarshal(data, &n) == nil {
			s.mu.Lock()
			s.switches = append(s.switches, layerSwitch{n.ConsumerID, n.SpatialLayer, time.Now()})
			s.mu.Unlock()
		}
	})
	c.On("disconnect", func(data json.RawMessage) {
		var n struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(data, &n) == nil {
			s.mu.Lock()
			s.disconnect = n.Reason
			s.mu.Unlock()
		}
	})
	c.OnTrack(s.addTrack)
}

// setPeers records the names of the peers joinRoom listed.
func (s *session) setPeers(peers []client.RoomPeer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range peers {
		s.who[p.PeerID] = person{p.DisplayName, p.UserID}
	}
}

func (s *session) addTrack(rt *client.RemoteTrack) {
	mime := rt.Track.Codec().MimeType
	t := &track{
		rt: rt, peerID: rt.PeerID, source: rt.Source,
		video: strings.HasPrefix(strings.ToLower(mime), "video/"),
		group: "camera",
		jb:    newJitterBuffer(jitterWait),
		asm:   newAssembler(mime),
		clock: trackClock{rate: rt.Track.Codec().ClockRate},
	}
	if strings.HasSuffix(rt.Source, ":screen") {
		t.group = "screen"
	}
	if t.clock.rate == 0 {
		t.clock.rate = 90000
	}
	rt.OnSenderReport(func(sr *rtcp.SenderReport, _ time.Time) {
		t.mu.Lock()
		t.srs = append(t.srs, senderReport{ntp: ntpDuration(sr.NTPTime), rtp: sr.RTPTime})
		t.mu.Unlock()
	})
	s.mu.Lock()
	s.incoming = append(s.incoming, t)
	s.mu.Unlock()
	go t.read()
}

// receiveEvery is how often the recorder reads its transports' sockets:
// one wake-up a tick for all recordings instead of one a packet (most of
// a recording's CPU); the jitter buffer waits far longer.
const receiveEvery = 10 * time.Millisecond

// read takes the track's packets until it ends, each into a buffer from
// the pool.
func (t *track) read() {
	_ = t.rt.Receive(t.take)
	t.mu.Lock()
	t.ended = true
	t.mu.Unlock()
}

// take queues a packet; it runs on the client's receiving goroutine.
func (t *track) take(b []byte, arrival time.Time) {
	p := newPacket()
	if len(b) > len(p.buf) || p.Unmarshal(p.buf[:copy(p.buf[:], b)]) != nil {
		p.release() // larger than any packet read, or not RTP: skipped
		return
	}
	t.mu.Lock()
	if len(t.in) >= maxQueued {
		t.in[0].pkt.release()
		t.in = t.in[1:]
		t.drops++
	}
	t.in = append(t.in, inPacket{pkt: p, arrival: arrival})
	t.mu.Unlock()
}

// begin sets the timeline's zero.
func (s *session) begin(start time.Time) { s.start, s.lastFlush = start, start }

// run writes until ctx ends or the client's connection does; what is
// placed is then on disk. It returns the first write error (a full disk),
// after which the files are left as they are: playable up to the error.
// The caller finishes the files, possibly after more runs with another
// client (a rejoin).
func (s *session) run(ctx context.Context, done <-chan struct{}) error {
	t := time.NewTicker(tickEvery)
	defer t.Stop()
	for s.err == nil {
		select {
		case <-ctx.Done():
			return nil
		case <-done:
			s.tick(time.Now(), false)
			s.flush()
			return s.err
		case now := <-t.C:
			s.tick(now, false)
		}
	}
	s.abandon()
	return s.err
}

// disconnected says why the server ended the client's connection ("" when
// it just went away) and forgets it, for the next connection.
func (s *session) disconnected() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	why := s.disconnect
	s.disconnect = ""
	return why
}

func (s *session) tick(now time.Time, final bool) {
	s.mu.Lock()
	s.tracks = append(s.tracks, s.incoming...)
	s.incoming = s.incoming[:0]
	switches := s.switches
	s.switches = nil
	for _, t := range s.tracks {
		if s.closed[t.rt.ConsumerID] {
			t.mu.Lock()
			t.ended = true
			t.mu.Unlock()
		}
	}
	s.mu.Unlock()
	for _, t := range s.tracks {
		s.pump(t, now, final)
	}
	for _, f := range s.files {
		s.write(f, now, final)
	}
	s.noteSwitches(switches, final)
	if final || now.Sub(s.lastFlush) >= flushEvery {
		s.lastFlush = now
		s.flush()
	}
	live := s.tracks[:0]
	for _, t := range s.tracks {
		if !t.done {
			live = append(live, t)
		}
	}
	clear(s.tracks[len(live):])
	s.tracks = live
}

// noteSwitches puts layer switches on the files of their tracks, in
// seconds from each file's start; a switch before the file began (the
// first layer chosen) is the layer it starts with, at 0. A switch of a
// track whose file is not written yet (or not received yet) waits for it
// a while.
func (s *session) noteSwitches(switches []layerSwitch, final bool) {
	var held []layerSwitch
	for _, sw := range switches {
		placed := false
		for _, t := range s.tracks {
			if t.rt.ConsumerID != sw.consumerID || t.file == nil || t.file.w == nil {
				continue
			}
			at := max(sw.at.Sub(s.start)-t.file.start, 0)
			t.file.layers = append(t.file.layers, LayerChange{At: at.Seconds(), SpatialLayer: sw.layer})
			placed = true
		}
		if !placed && !final && time.Since(sw.at) < switchWait {
			held = append(held, sw)
		}
	}
	if len(held) > 0 {
		s.mu.Lock()
		s.switches = append(held, s.switches...) // before the ones come meanwhile
		s.mu.Unlock()
	}
}

// clear0 empties s for reuse, dropping what its elements point to.
func clear0[S ~[]E, E any](s S) S {
	clear(s)
	return s[:0]
}

// switchWait is how long a layer switch is kept for its track's file
// (which waits up to about 6 s for the participant's other tracks).
const switchWait = 10 * time.Second

// pump moves a track's packets through its jitter buffer and assembler
// and places the frames on the timeline.
func (s *session) pump(t *track, now time.Time, final bool) {
	t.mu.Lock()
	in, srs, ended := t.in, t.srs, t.ended || final
	t.in, t.srs = t.spare[:0], nil
	t.mu.Unlock()
	defer func() { t.spare = clear0(in) }()
	for _, sr := range srs {
		t.clock.report(sr)
	}
	s.stats.packets.Add(uint64(len(in)))
	due := now
	if ended {
		due = now.Add(time.Hour) // give up on every hole
	}
	if t.flow(in, due, s.start, nil) && t.video && now.Sub(t.lastKeyReq) >= keyframeWait {
		t.lastKeyReq = now
		err := t.rt.RequestKeyframe()
		s.log.Debug("keyframe requested", "peer", t.peerID, "source", t.source, "err", err)
	}
	if lost := t.jb.lost - t.reportedLost; lost > 0 {
		t.reportedLost = t.jb.lost
		s.stats.lost.Add(lost)
		if s.onLost != nil {
			s.onLost(lost)
		}
	}
	if !t.clock.anchored && len(t.pending) > 0 {
		if t.clock.peer == nil {
			pc := s.peers[t.peerID]
			if pc == nil {
				pc = &peerClock{}
				s.peers[t.peerID] = pc
			}
			t.clock.peer = pc
		}
		waited := now.Sub(t.first)
		if ended {
			waited = srWait
		}
		placed, shift := t.clock.anchor(t.pending, waited, s.unwritten(t.peerID))
		if shift > 0 {
			s.shiftPeer(t, shift)
		}
		if placed {
			s.log.Debug("track placed", "peer", t.peerID, "source", t.source, "bySenderReport", !t.clock.byArrival,
				"waited", waited, "frames", len(t.pending), "first", t.pending[0].arrived, "at", t.clock.place(t.pending[0]))
			for _, f := range t.pending {
				t.place(f)
			}
			t.pending = nil
		}
	}
	if t.placedAny && t.file == nil {
		s.assign(t)
	}
	if ended && len(t.pending) == 0 && len(t.queue) == 0 {
		s.log.Debug("track ended", "peer", t.peerID, "source", t.source, "lost", t.jb.lost,
			"placedAfterArrival", fmt.Sprintf("%v..%v", t.skew[0], t.skew[1]))
		t.done = true
		if t.file != nil && t.slot > 0 {
			t.file.slots[t.slot-1].owner = nil
		}
	}
	t.over = ended
}

// flow takes in through the jitter buffer, pops what is due and hands it
// to the assembler: each frame it completes goes on the timeline, or waits
// in pending until the track's clock is anchored (start is the timeline's
// zero). It reports whether the assembler asked for a keyframe. seen, when
// set, is shown each packet popped and what the assembler made of it,
// before the packet goes back to its pool.
func (t *track) flow(in []inPacket, due, start time.Time, seen func(p outPacket, f frame, ok bool)) (wantKey bool) {
	for _, p := range in {
		if t.first.IsZero() {
			t.first = p.arrival
		}
		t.lastArrival = p.arrival
		t.jb.push(p.pkt, p.arrival)
	}
	t.out = t.jb.pop(due, clear0(t.out))
	for _, p := range t.out {
		f, ok, key := t.asm.add(p)
		wantKey = wantKey || key
		if seen != nil {
			seen(p, f, ok)
		}
		p.pkt.release() // the frame has what it needs of it
		if !ok {
			continue
		}
		tf := timed{frame: f, ext: t.clock.extend(f.rtpTS), arrived: f.arrival.Sub(start)}
		if t.clock.anchored {
			t.place(tf)
		} else {
			t.pending = append(t.pending, tf)
		}
	}
	return wantKey
}

// unwritten reports whether no frame of the peer's tracks is in a file yet.
func (s *session) unwritten(peerID string) bool {
	for _, t := range s.tracks {
		if t.peerID == peerID && t.slot != 0 {
			return false
		}
	}
	return true
}

// shiftPeer moves the frames already placed of t's peer earlier: a track
// placed later showed a smaller delay than the first one did (a keyframe
// is slower to arrive than audio).
func (s *session) shiftPeer(t *track, shift time.Duration) {
	s.log.Debug("peer's clock offset lowered", "peer", t.peerID, "by", shift, "source", t.source)
	for _, u := range s.tracks {
		if u == t || u.peerID != t.peerID || !u.placedAny || u.clock.byArrival {
			continue
		}
		for i := range u.queue {
			u.queue[i].at -= shift
		}
		u.lastPlaced -= shift
	}
}

func (t *track) place(f timed) {
	at := t.clock.place(f)
	if d := at - f.arrived; !t.placedAny {
		t.skew = [2]time.Duration{d, d}
	} else {
		t.skew = [2]time.Duration{min(t.skew[0], d), max(t.skew[1], d)}
	}
	if !t.video && !t.clock.byArrival {
		at += audioLag // where a browser plays it (by the reports)
	}
	if t.placedAny && at < t.lastPlaced {
		at = t.lastPlaced
	}
	t.lastPlaced, t.placedAny = at, true
	t.queue = append(t.queue, placed{at: at, key: f.key, data: f.data})
}

// waiting reports whether a track of f's peer and group is still being
// placed: the file waits for it rather than start without it.
func (s *session) waiting(f *pfile, now time.Time) bool {
	for _, t := range s.tracks {
		if t.peerID == f.peerID && t.group == f.group && t.file == nil && !t.done &&
			!t.placedAny && !t.first.IsZero() && now.Sub(t.first) < srWait+time.Second {
			return true
		}
	}
	return false
}

// write puts the frames of f's tracks into the file in time order, up to
// where every live track has placed frames.
func (s *session) write(f *pfile, now time.Time, final bool) {
	var feeding []*track
	for _, t := range s.tracks {
		if t.file == f {
			feeding = append(feeding, t)
		}
	}
	limit := time.Duration(math.MaxInt64)
	if !final {
		if s.waiting(f, now) {
			return
		}
		for _, t := range feeding {
			if !t.over && now.Sub(t.lastArrival) < quietAfter {
				limit = min(limit, t.lastPlaced)
			}
		}
		limit = max(limit, now.Sub(s.start)-maxHold)
	}
	for s.err == nil {
		var next *track
		for _, t := range feeding {
			if len(t.queue) > 0 && t.queue[0].at <= limit && (next == nil || t.queue[0].at < next.queue[0].at) {
				next = t
			}
		}
		if next == nil {
			return
		}
		p := next.queue[0]
		next.queue[0] = placed{}
		next.queue = next.queue[1:]
		s.writeFrame(f, next, p)
	}
}

func (s *session) writeFrame(f *pfile, t *track, p placed) {
	if t.slot == 0 {
		if err := s.addToFile(f, t, p); err != nil {
			var ce codecError
			if !errors.As(err, &ce) {
				s.fail(err) // the disk: the recording cannot go on
				return
			}
			s.log.Warn("track not recorded", "peer", t.peerID, "source", t.source, "err", err)
			t.slot = -1
		}
	}
	if t.slot < 0 {
		return
	}
	ms := (p.at - f.start).Milliseconds()
	if ms < 0 {
		if !t.video {
			return // sound from before the file began
		}
		// A picture placed before the file began (the file began with
		// the audio, placed later than it by audioLag, or at the
		// recording's start): it and the ones that refer to it go at
		// the start.
		ms = 0
	}
	if err := f.w.WriteFrame(t.slot, ms, p.key, p.data); err != nil {
		s.fail(err)
		return
	}
	if t.video {
		f.phase.add(f.start + time.Duration(ms)*time.Millisecond)
	}
	last, seen := f.lastMs[t.slot]
	step := int64(20)
	if seen && ms > last {
		step = min(ms-last, 100)
	}
	f.lastMs[t.slot] = ms
	f.w.SetEnd(ms + step)
}

// addToFile gives t a track of f, making the file on its first frame.
func (s *session) addToFile(f *pfile, t *track, p placed) error {
	spec, codec, err := trackSpec(t, p)
	if err != nil {
		return codecError{err}
	}
	if f.w == nil {
		s.log.Debug("file started", "file", f.base, "at", p.at, "source", t.source)
		// Not before the recording's start: a frame captured just before
		// it (arriving after) goes at the file's start.
		f.start = max(p.at, 0)
		w, err := mkv.Create(filepath.Join(s.dir, f.base+".webm"), spec)
		if err != nil {
			return err
		}
		f.w = w
		f.slots = append(f.slots, fileSlot{video: t.video, codec: spec.CodecID, owner: t})
		t.slot = 1
	} else {
		for i, sl := range f.slots {
			if sl.owner == nil && sl.video == t.video && sl.codec == spec.CodecID {
				f.slots[i].owner = t
				t.slot = i + 1
				break
			}
		}
		if t.slot == 0 {
			n, err := f.w.AddTrack(spec)
			if err != nil {
				return err
			}
			f.slots = append(f.slots, fileSlot{video: t.video, codec: spec.CodecID, owner: t})
			t.slot = n
		}
	}
	if !containsString(f.codecs, codec) {
		f.codecs = append(f.codecs, codec)
	}
	if !f.w.WebM() && strings.HasSuffix(f.w.Path(), ".webm") {
		if err := f.w.Rename(strings.TrimSuffix(f.w.Path(), ".webm") + ".mkv"); err != nil {
			return err
		}
	}
	return nil
}

// codecError is a track that cannot go in a file (as opposed to a file
// that cannot be written).
type codecError struct{ error }

func (e codecError) Unwrap() error { return e.error }

// trackSpec describes t's codec for the file header, from its first frame.
func trackSpec(t *track, first placed) (mkv.Track, string, error) {
	c := t.rt.Track.Codec()
	codec := strings.ToLower(c.MimeType[strings.IndexByte(c.MimeType, '/')+1:])
	name := t.source
	switch codec {
	case "opus":
		return mkv.OpusTrack(name, max(int(c.Channels), 1)), codec, nil
	case "pcma", "pcmu":
		return mkv.G711Track(name, codec == "pcma", int(c.ClockRate), max(int(c.Channels), 1)), codec, nil
	case "vp8":
		w, h, _ := picsize.VP8(first.data)
		return mkv.Track{Type: mkv.Video, Name: name, CodecID: "V_VP8", Width: w, Height: h}, codec, nil
	case "vp9":
		w, h, _ := picsize.VP9(first.data)
		if t.asm.vp9Width > 0 && t.asm.vp9Hgt > 0 {
			w, h = t.asm.vp9Width, t.asm.vp9Hgt // a scalable stream: its largest layer's
		}
		return mkv.Track{Type: mkv.Video, Name: name, CodecID: "V_VP9", Width: w, Height: h}, codec, nil
	case "h264":
		if len(t.asm.sps) == 0 || len(t.asm.pps) == 0 {
			return mkv.Track{}, codec, fmt.Errorf("H.264 keyframe without SPS and PPS")
		}
		priv, err := mkv.AVCConfig(t.asm.sps, t.asm.pps)
		if err != nil {
			return mkv.Track{}, codec, err
		}
		w, h, _ := picsize.H264(t.asm.sps)
		return mkv.Track{Type: mkv.Video, Name: name, CodecID: "V_MPEG4/ISO/AVC", CodecPrivate: priv, Width: w, Height: h}, codec, nil
	case "av1":
		seq, payload, ok := mkv.AV1SequenceHeader(t.asm.av1Seq)
		if !ok {
			return mkv.Track{}, codec, fmt.Errorf("AV1 keyframe without a sequence header")
		}
		priv, err := mkv.AV1Config(seq, payload)
		if err != nil {
			return mkv.Track{}, codec, err
		}
		w, h, _ := picsize.AV1(payload)
		return mkv.Track{Type: mkv.Video, Name: name, CodecID: "V_AV1", CodecPrivate: priv, Width: w, Height: h}, codec, nil
	}
	return mkv.Track{}, codec, fmt.Errorf("codec %s cannot be recorded", c.MimeType)
}

// assign picks the file of a track once it has frames: the participant's
// camera file (taken over by the same user rejoining, or the same name
// where tickets name no users), or a new file per screen share. Two
// users of one name have a file each (Ann, Ann-2).
func (s *session) assign(t *track) {
	s.mu.Lock()
	who := s.who[t.peerID]
	s.mu.Unlock()
	name, user := who.name, who.user
	if name == "" {
		name = t.peerID
	}
	for _, f := range s.files {
		same := f.user == user && (user != "" || f.participant == name)
		if !same || f.group != t.group {
			continue
		}
		if f.peerID == t.peerID && (t.group == "camera" || s.live(f)) {
			t.file = f
			return
		}
		if t.group == "camera" && !s.live(f) {
			f.peerID = t.peerID // the participant is back
			t.file = f
			return
		}
	}
	base := safeName(name)
	if t.group == "screen" {
		base += "-screen"
	}
	unique := base
	for i := 2; s.hasFile(unique); i++ {
		unique = fmt.Sprintf("%s-%d", base, i)
	}
	f := &pfile{base: unique, participant: name, user: user, group: t.group, peerID: t.peerID, lastMs: map[int]int64{}}
	s.files = append(s.files, f)
	t.file = f
}

// live reports whether any unfinished track feeds f.
func (s *session) live(f *pfile) bool {
	for _, t := range s.tracks {
		if t.file == f && !t.done && !t.over {
			return true
		}
	}
	return false
}

func (s *session) hasFile(base string) bool {
	for _, f := range s.files {
		if strings.EqualFold(f.base, base) {
			return true
		}
	}
	return false
}

// safeName makes a display name a file name: letters, digits, '-', '_'
// and '.', never starting with a dot, at most 64 runes.
func safeName(name string) string {
	var b strings.Builder
	n := 0
	for _, r := range name {
		if n == 64 {
			break
		}
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == '.' && n > 0:
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
		n++
	}
	if b.Len() == 0 {
		return "participant"
	}
	return b.String()
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (s *session) flush() {
	var size int64
	for _, f := range s.files {
		if f.w == nil {
			continue
		}
		if err := f.w.Flush(); err != nil {
			s.fail(err)
		}
		size += f.w.Size()
	}
	s.stats.bytes.Store(size)
	info := s.fileInfo()
	s.files0.Store(&info)
	if s.onBytes != nil && size > s.lastBytes {
		s.onBytes(size - s.lastBytes)
	}
	s.lastBytes = size
}

func (s *session) fail(err error) {
	if s.err == nil {
		s.err = err
		s.log.Error("recording write failed", "err", err)
	}
}

// finish writes what is left and closes every file.
func (s *session) finish() error {
	s.tick(time.Now(), true)
	for _, t := range s.tracks {
		s.log.Debug("track ended", "peer", t.peerID, "source", t.source, "lost", t.jb.lost,
			"placedAfterArrival", fmt.Sprintf("%v..%v", t.skew[0], t.skew[1]))
	}
	for _, f := range s.files {
		if f.w == nil {
			continue
		}
		if err := f.w.Close(); err != nil {
			s.fail(err)
		}
	}
	info := s.fileInfo()
	s.files0.Store(&info)
	return s.err
}

// Files lists the files as of the last flush; safe while run goes on.
func (s *session) Files() []File {
	if p := s.files0.Load(); p != nil {
		return *p
	}
	return nil
}

// abandon closes the files as they are after a write error.
func (s *session) abandon() {
	for _, f := range s.files {
		if f.w != nil {
			f.w.Abandon()
		}
	}
}

// fileInfo describes the files for the manifest and the API.
func (s *session) fileInfo() []File {
	var out []File
	for _, f := range s.files {
		if f.w == nil {
			continue
		}
		source := "camera"
		if f.group == "screen" {
			source = "screen"
		}
		out = append(out, File{
			Name: filepath.Base(f.w.Path()), Size: f.w.Size(), Duration: f.w.Duration().Seconds(),
			Participant: f.participant, UserID: f.user, Source: source, Codecs: append([]string(nil), f.codecs...),
			Offset: f.start.Seconds(), Layers: append([]LayerChange(nil), f.layers...),
			frameShift: f.phase.shift().Seconds(),
		})
	}
	return out
}
