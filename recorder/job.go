package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vclass/vclass/auth"
	"github.com/vclass/vclass/client"
	"github.com/vclass/vclass/config"
)

// State is where a recording is in its life.
type State string

// States. A job goes starting → recording → stopping → done, or ends
// failed (with a reason) or interrupted (the recorder died under it).
const (
	StateStarting    State = "starting"
	StateRecording   State = "recording"
	StateStopping    State = "stopping"
	StateDone        State = "done"
	StateFailed      State = "failed"
	StateInterrupted State = "interrupted"
)

// active reports whether a job in state s holds a slot.
func (s State) active() bool {
	return s == StateStarting || s == StateRecording || s == StateStopping
}

// Recording is a job as the API shows it; recording.json in the job's
// folder keeps the same.
type Recording struct {
	ID           string        `json:"id"`
	Client       string        `json:"client"`
	Room         string        `json:"room"`
	State        State         `json:"state"`
	Reason       string        `json:"reason,omitempty"`
	CreatedAt    time.Time     `json:"createdAt"`
	StartedAt    *time.Time    `json:"startedAt,omitempty"`
	EndedAt      *time.Time    `json:"endedAt,omitempty"`
	Duration     float64       `json:"duration"` // seconds of recording
	Bytes        int64         `json:"bytes"`
	PacketsLost  uint64        `json:"packetsLost"`
	Participants []Participant `json:"participants"`
	Files        []File        `json:"files"`
	CallbackURL  string        `json:"callbackUrl,omitempty"`
	Compose      bool          `json:"compose"`
	ComposeError string        `json:"composeError,omitempty"`
}

// Participant is someone recorded, and their files: one per portal user
// (the ticket's sub) where tickets name users, else per display name.
type Participant struct {
	Name   string   `json:"name"`
	UserID string   `json:"userId,omitempty"`
	Files  []string `json:"files"`
}

// File is one file of a recording.
type File struct {
	Name        string   `json:"name"`
	Size        int64    `json:"size"`
	Duration    float64  `json:"duration"` // seconds
	Participant string   `json:"participant,omitempty"`
	UserID      string   `json:"userId,omitempty"` // the participant's portal user (ticket sub)
	Source      string   `json:"source"`           // camera, screen, composite, manifest
	Codecs      []string `json:"codecs,omitempty"`
	Offset      float64  `json:"offset"` // seconds from the recording's start
	// Layers lists the camera's simulcast layer switches: the server
	// sends the recorder the largest layer its link affords, and a change
	// of it shows as a change of picture size in the file.
	Layers []LayerChange `json:"layers,omitempty"`

	// frameShift moves the file in class.mp4 (seconds) so that its
	// camera's frames fall on the canvas's (see framePhase).
	frameShift float64
}

// LayerChange is a switch to another simulcast layer, At seconds into the
// file (as the server announced it: within a frame or two of the new
// layer's first keyframe). SpatialLayer 0 is the smallest.
type LayerChange struct {
	At           float64 `json:"at"`
	SpatialLayer int     `json:"spatialLayer"`
}

// callbackWait bounds how long an ended job waits for its last callbacks.
const callbackWait = 5 * time.Second

// stateFile is the job's record in its folder.
const stateFile = "recording.json"

// job is one recording.
type job struct {
	svc    *Service
	log    *slog.Logger
	dir    string
	client *config.RecorderClient // nil for the administrator's own jobs
	ffmpeg config.Ffmpeg
	stop   chan struct{} // closed by Stop
	once   sync.Once
	done   chan struct{} // closed when the job has ended
	stats  sessionStats
	cb     *callbacks

	stateMu sync.Mutex // one state change at a time: saved and posted in order
	mu      sync.Mutex
	rec     Recording
	sess    *session
	why     string // why the recording ended

	released bool // its slot in Redis is given up (under svc.leaseMu)
}

func (j *job) snapshot() Recording {
	j.mu.Lock()
	r := j.rec
	sess := j.sess
	j.mu.Unlock()
	if r.State == StateRecording || r.State == StateStopping {
		if sess != nil {
			r.Files = sess.Files()
		}
		r.Bytes = j.stats.bytes.Load()
		r.PacketsLost = j.stats.lost.Load()
		if r.StartedAt != nil {
			r.Duration = time.Since(*r.StartedAt).Seconds()
		}
	}
	r.Participants = participants(r.Files)
	r.Files = append([]File(nil), r.Files...)
	return r
}

func participants(files []File) []Participant {
	var out []Participant
	idx := map[string]int{}
	for _, f := range files {
		if f.Participant == "" {
			continue
		}
		key := "name:" + f.Participant
		if f.UserID != "" {
			key = "user:" + f.UserID
		}
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			out = append(out, Participant{Name: f.Participant, UserID: f.UserID})
		}
		out[i].Files = append(out[i].Files, f.Name)
	}
	return out
}

// setState moves the job on, saves it and tells the callback.
func (j *job) setState(s State, reason string) {
	j.stateMu.Lock()
	defer j.stateMu.Unlock()
	if !s.active() {
		// Before the state shows: whoever sees it ended finds its slot free.
		j.svc.releaseSlot(j)
	}
	j.mu.Lock()
	j.rec.State = s
	if reason != "" {
		j.rec.Reason = reason
	}
	now := time.Now().UTC()
	switch s {
	case StateRecording:
		j.rec.StartedAt = &now
	case StateDone, StateFailed, StateInterrupted:
		j.rec.EndedAt = &now
	}
	j.mu.Unlock()
	j.save()
	rec := j.snapshot()
	j.svc.metrics.state(j, s)
	j.log.Info("recording state", "state", s, "reason", reason)
	if j.cb != nil {
		j.cb.post(rec)
	}
}

// save writes recording.json atomically.
func (j *job) save() {
	rec := j.snapshot()
	data, _ := json.MarshalIndent(rec, "", "  ")
	tmp := filepath.Join(j.dir, "."+stateFile+".tmp")
	err := os.WriteFile(tmp, data, 0o644)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(j.dir, stateFile))
	}
	if err != nil {
		j.log.Warn("recording state not saved", "err", err)
	}
}

// requestStop asks the job to end; it is idempotent.
func (j *job) requestStop(why string) {
	j.once.Do(func() {
		j.mu.Lock()
		j.why = why
		j.mu.Unlock()
		close(j.stop)
	})
}

// run is the job's life.
func (j *job) run() {
	defer close(j.done)
	defer func() {
		if j.cb != nil {
			j.cb.close(callbackWait)
		}
	}()
	if d := j.ffmpeg.StartDelay; d > 0 {
		select {
		case <-time.After(d):
		case <-j.stop:
			j.setState(StateDone, "stopped before it started")
			return
		}
	}
	c, peers, err := j.join()
	if err != nil {
		if errors.Is(err, errStopped) {
			j.setState(StateDone, "stopped before it started")
		} else {
			j.setState(StateFailed, err.Error())
		}
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-j.stop:
			cancel() // run moves the state on when the session returns
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	j.sess.begin(start)
	j.setState(StateRecording, "")
	why := ""
	for {
		j.sess.setPeers(peers)
		err = j.sess.run(ctx, c.Done())
		c.Close()
		if err != nil || ctx.Err() != nil {
			break
		}
		// The media server ended the connection: the room is over, or the
		// server went away (a restart, a crash): join again.
		reason := j.sess.disconnected()
		if final := finalDisconnect(reason); final != "" {
			why = final
			break
		}
		j.log.Warn("connection to the media server lost; joining again", "reason", reason)
		c, peers, err = j.join()
		if err != nil {
			switch {
			case errors.Is(err, errRoomGone):
				// The server's word on it may have been lost with the
				// connection; a room not live for the whole join timeout is
				// over either way.
				why = "the room closed (it was no longer live when the recorder reconnected)"
			case !errors.Is(err, errStopped):
				why = "the connection to the media server was lost and could not be restored: " + err.Error()
			}
			err = nil
			break
		}
		j.log.Info("joined the room again")
	}
	cancel()
	j.setStopping()
	if err == nil {
		err = j.sess.finish()
	} else {
		j.sess.abandon()
	}
	j.mu.Lock()
	if j.why != "" {
		why = j.why
	}
	j.mu.Unlock()
	files := j.sess.Files()
	j.mu.Lock()
	j.rec.Files = files
	j.rec.Bytes = j.stats.bytes.Load()
	j.rec.PacketsLost = j.stats.lost.Load()
	j.rec.Duration = time.Since(start).Seconds()
	// The record is all a finished job needs: the session would keep its
	// tracks, buffers and closed client (about 1 MiB) for as long as the
	// recording is listed.
	j.sess = nil
	j.mu.Unlock()
	if err != nil {
		j.setState(StateFailed, failReason(err))
		return
	}
	j.finish(start, files)
	j.setState(StateDone, why)
}

// finalDisconnect says in words why a disconnect ends the recording, or ""
// when the recorder should join again.
func finalDisconnect(reason string) string {
	switch reason {
	case "roomClosed":
		return "the room closed"
	case "kicked":
		return "the recorder was removed from the room"
	case "replaced":
		return "another connection of this recording replaced it"
	}
	return ""
}

func (j *job) setStopping() {
	j.mu.Lock()
	moved := j.rec.State == StateRecording
	j.mu.Unlock()
	if moved {
		j.setState(StateStopping, "")
	}
}

// failReason says what went wrong in words an operator acts on.
func failReason(err error) string {
	if isNoSpace(err) {
		return "disk full: " + err.Error() + " (what was written is kept)"
	}
	return err.Error()
}

var errStopped = errors.New("recorder: stopped")

// errRoomGone: the room was not live for the whole join timeout.
var errRoomGone = errors.New("recorder: the room is not live")

// roomGoneError is a join that failed for errRoomGone, in its own words.
type roomGoneError struct{ error }

func (roomGoneError) Is(target error) bool { return target == errRoomGone }

// join connects to the media server with a recorder ticket and enters
// the room, trying again until the join timeout while the room is not
// live or the server cannot be reached.
func (j *job) join() (*client.Client, []client.RoomPeer, error) {
	cfg := j.svc.cfg
	deadline := time.Now().Add(cfg.JoinTimeout)
	var last error
	for attempt := 0; ; attempt++ {
		c, peers, err := j.joinOnce(deadline)
		if err == nil {
			return c, peers, nil
		}
		last = err
		var se *client.ServerError
		// Not live yet, a node going down, a cluster without its Redis
		// for a moment: tried again until the join timeout.
		if errors.As(err, &se) && se.Code != "noRoom" && se.Code != "shuttingDown" && se.Code != "clusterUnavailable" {
			return nil, nil, fmt.Errorf("the media server refused the recorder: %s", se.Message)
		}
		wait := time.Second
		if time.Until(deadline) < wait {
			err := fmt.Errorf("could not join room %q within %v: %v", j.rec.Room, cfg.JoinTimeout, describeJoinError(last))
			if errors.As(last, &se) && se.Code == "noRoom" {
				err = roomGoneError{err}
			}
			return nil, nil, err
		}
		select {
		case <-time.After(wait):
		case <-j.stop:
			return nil, nil, errStopped
		}
	}
}

func describeJoinError(err error) string {
	var se *client.ServerError
	if errors.As(err, &se) && se.Code == "noRoom" {
		return "the room is not live on the media server"
	}
	return err.Error()
}

func (j *job) joinOnce(deadline time.Time) (*client.Client, []client.RoomPeer, error) {
	cfg := j.svc.cfg
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	go func() {
		select {
		case <-j.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	ticket, err := auth.Mint(cfg.AuthSecret, auth.Claims{Room: j.rec.Room, Name: "recorder", Role: auth.RoleRecorder,
		RegisteredClaims: jwtSubject("recorder-" + j.rec.ID)}, time.Now(), time.Minute)
	if err != nil {
		return nil, nil, err
	}
	j.mu.Lock()
	sess := j.sess
	j.mu.Unlock()
	if sess == nil {
		sess = newSession(j.log, j.dir, &j.stats)
		sess.onBytes, sess.onLost = j.svc.metrics.bytes, j.svc.metrics.lost
	}
	c, peers, err := joinSomeNode(ctx, client.Options{DisplayName: "recorder", Ticket: ticket, Logger: j.log, ReceiveEvery: receiveEvery},
		strings.Split(cfg.MediaURL, ","), j.rec.Room, sess.attach)
	if err != nil {
		return nil, nil, err
	}
	j.mu.Lock()
	j.sess = sess
	j.mu.Unlock()
	return c, peers, nil
}

// joinSomeNode enters room through the first of urls that takes it. In a
// cluster a node the room is not on answers with the room's node's public
// URL, which the recorder may not reach from the inside network (the
// kit's containers do not resolve the site's name): the other urls, all
// nodes the recorder reaches, are tried first, and the public URL last.
// A url that does not answer is skipped.
func joinSomeNode(ctx context.Context, opts client.Options, urls []string, room string, setup func(*client.Client)) (*client.Client, []client.RoomPeer, error) {
	var redirect string
	var err error
	for _, url := range urls {
		opts.URL = strings.TrimSpace(url)
		var c *client.Client
		if c, err = client.Dial(ctx, opts); err != nil {
			var se *client.ServerError
			if ctx.Err() != nil || errors.As(err, &se) {
				return nil, nil, err // a media server refused the recorder (its ticket)
			}
			continue // it does not answer
		}
		setup(c)
		peers, jerr := c.JoinRoom(ctx, room)
		if jerr == nil {
			return c, peers, nil
		}
		c.Close()
		err = jerr
		var se *client.ServerError
		switch {
		case ctx.Err() != nil:
			return nil, nil, jerr
		case !errors.As(jerr, &se):
			continue // the connection failed
		case se.Code != "redirect" || se.Redirect == "":
			return nil, nil, jerr // a media server answered: no other would answer otherwise
		}
		redirect = se.Redirect
	}
	if redirect == "" {
		return nil, nil, err
	}
	opts.URL = redirect
	return client.DialRoom(ctx, opts, room, setup)
}

// finish writes manifest.json and composes class.mp4 when asked to.
func (j *job) finish(start time.Time, files []File) {
	files = slices.Clone(files) // the session's list is shared with readers
	sort.Slice(files, func(a, b int) bool { return files[a].Offset < files[b].Offset })
	man := Manifest{Room: j.rec.Room, ID: j.rec.ID, Start: start.UTC(), Duration: time.Since(start).Seconds(), Files: files}
	if err := writeJSON(filepath.Join(j.dir, "manifest.json"), man); err != nil {
		j.log.Warn("manifest not written", "err", err)
	}
	extra := []File{}
	if st, err := os.Stat(filepath.Join(j.dir, "manifest.json")); err == nil {
		extra = append(extra, File{Name: "manifest.json", Size: st.Size(), Source: "manifest"})
	}
	var composeErr string
	if j.rec.Compose && len(files) > 0 {
		if j.svc.isDraining() {
			composeErr = "not composed: the recorder was shutting down"
		} else if ff := j.svc.ffmpegPath(); ff == "" {
			composeErr = "ffmpeg is not installed"
		} else {
			j.log.Info("composing class.mp4", "files", len(files))
			out := filepath.Join(j.dir, "class.mp4")
			if err := compose(j.svc.drainCtx, ff, j.dir, files, man.Duration, j.ffmpeg, out); err != nil {
				composeErr = err.Error()
				j.log.Warn("compose failed", "err", err)
			} else if st, err := os.Stat(out); err == nil {
				extra = append(extra, File{Name: "class.mp4", Size: st.Size(), Duration: man.Duration, Source: "composite"})
			}
		}
	}
	j.mu.Lock()
	j.rec.Files = append(files, extra...)
	j.rec.ComposeError = composeErr
	for _, f := range extra {
		j.rec.Bytes += f.Size
	}
	j.mu.Unlock()
}

// Manifest is manifest.json: what a recording holds and where each file
// sits on its timeline.
type Manifest struct {
	ID       string    `json:"id"`
	Room     string    `json:"room"`
	Start    time.Time `json:"start"`
	Duration float64   `json:"duration"`
	Files    []File    `json:"files"`
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// validName reports whether name may be a file of a recording: no path,
// no dot file.
func validName(name string) bool {
	return name != "" && !strings.ContainsAny(name, `/\`) && !strings.HasPrefix(name, ".") && name != stateFile
}
