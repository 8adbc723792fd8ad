// Package recorder is vclass-recorder: it joins rooms of vclass-media as
// an invisible recorder peer and writes what it receives, without
// re-encoding, one file per participant and per screen share, each
// playable at every moment. Portal clients start and stop recordings over
// an HTTPS API, each within its own number of slots.
package recorder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vclass/vclass/cluster"
	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/recorder/mkv"
)

// Params configure a Service.
type Params struct {
	Config   *config.Recorder
	Logger   *slog.Logger
	Registry prometheus.Registerer // nil: metrics are not registered
	// FFmpeg is the ffmpeg to compose with; empty looks it up in PATH, and
	// without one recordings are not composed.
	FFmpeg string
}

// Service runs recording jobs.
type Service struct {
	cfg     *config.Recorder
	log     *slog.Logger
	metrics *metrics
	ffmpeg  string

	// slots, with Redis, counts the clients' recordings across recorders.
	slots *cluster.Slots

	// leaseMu keeps a renewal from taking again the slot of a job whose
	// slot is being released (Renew takes lost leases again).
	leaseMu sync.Mutex

	mu       sync.Mutex
	jobs     map[string]*job
	draining bool
	// drainCtx ends when Shutdown begins: compositions stop then.
	drainCtx context.Context
	drained  context.CancelFunc

	// bg counts the goroutines Shutdown waits for besides the jobs: the
	// lease renewal and the callbacks of recordings found interrupted.
	bg sync.WaitGroup
}

// slotLease is how long a recording's slot in Redis outlives the last
// renewal by its recorder (every slotLease/3).
const slotLease = 9 * time.Second

// renewSlots keeps the leases of the running recordings until shutdown.
func (s *Service) renewSlots() {
	t := time.NewTicker(slotLease / 3)
	defer t.Stop()
	for {
		select {
		case <-s.drainCtx.Done():
			return
		case <-t.C:
		}
		s.renewLeases()
	}
}

func (s *Service) renewLeases() {
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	byClient := map[string][]string{}
	s.mu.Lock()
	for id, j := range s.jobs {
		if j.rec.Client != "" && !j.released && j.state().active() {
			byClient[j.rec.Client] = append(byClient[j.rec.Client], id)
		}
	}
	s.mu.Unlock()
	for client, ids := range byClient {
		if err := s.slots.Renew(context.Background(), client, ids); err != nil {
			s.log.Warn("slot leases not renewed (Redis)", "client", client, "err", err)
		}
	}
}

// releaseSlot frees an ended recording's slot in Redis.
func (s *Service) releaseSlot(j *job) {
	if s.slots == nil || j.rec.Client == "" {
		return
	}
	s.leaseMu.Lock()
	defer s.leaseMu.Unlock()
	j.released = true
	if err := s.slots.Release(context.Background(), j.rec.Client, j.rec.ID); err != nil {
		s.log.Warn("slot not released (it will lapse)", "recording", j.rec.ID, "err", err)
	}
}

// releaseLost frees the slots that recordings a dead recorder left going
// still hold in Redis, one request per client (with Redis down, they
// lapse instead).
func (s *Service) releaseLost(lost map[string][]string) {
	if s.slots == nil {
		return
	}
	for client, ids := range lost {
		if err := s.slots.Release(context.Background(), client, ids...); err != nil {
			s.log.Warn("slots of interrupted recordings not released (they will lapse)", "client", client, "recordings", ids, "err", err)
		}
	}
}

// Errors of the service, for the API to map.
var (
	ErrNotFound   = errors.New("recorder: no such recording")
	ErrActive     = errors.New("recorder: the recording is still going on")
	ErrDraining   = errors.New("recorder: shutting down")
	ErrBadRequest = errors.New("recorder: bad request")
	// ErrSlotsUnavailable: slots are shared through Redis, which is down.
	ErrSlotsUnavailable = errors.New("recorder: the shared slot count (Redis) is unavailable")
)

// SlotsFullError is the answer to a start beyond a client's slots.
type SlotsFullError struct {
	Client string
	Slots  int
	Active []string // the client's recordings holding slots
	// Stopping counts those already stopping: a slot frees when one of
	// them is done.
	Stopping int
}

func (e *SlotsFullError) Error() string {
	return fmt.Sprintf("client %s uses all of its %d recording slots", e.Client, e.Slots)
}

// New makes a service and takes back the jobs of a previous run: those
// that were going on when it died are interrupted, their files kept.
func New(p Params) (*Service, error) {
	if p.Logger == nil {
		p.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{cfg: p.Config, log: p.Logger, jobs: map[string]*job{}, ffmpeg: p.FFmpeg}
	s.drainCtx, s.drained = context.WithCancel(context.Background())
	if s.ffmpeg == "" {
		s.ffmpeg, _ = exec.LookPath("ffmpeg")
	}
	s.metrics = newMetrics(p.Registry, p.Config)
	if p.Config.RedisURL != "" {
		slots, err := cluster.NewSlots(p.Config.RedisURL, slotLease)
		if err != nil {
			return nil, err
		}
		s.slots = slots
	}
	for _, dir := range s.recordingDirs() {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("recording folder: %w", err)
		}
		if err := s.restore(dir); err != nil {
			return nil, err
		}
	}
	if s.slots != nil {
		s.bg.Add(1)
		go func() {
			defer s.bg.Done()
			s.renewSlots()
		}()
	}
	return s, nil
}

func (s *Service) ffmpegPath() string { return s.ffmpeg }

func (s *Service) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// recordingDirs lists the global folder and every client's own.
func (s *Service) recordingDirs() []string {
	seen := map[string]bool{}
	var out []string
	add := func(d string) {
		if d != "" && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	add(s.cfg.RecordingDir)
	for _, c := range s.cfg.Clients {
		add(c.RecordingDir)
	}
	return out
}

func (s *Service) dirOf(c *config.RecorderClient) string {
	if c != nil && c.RecordingDir != "" {
		return c.RecordingDir
	}
	return s.cfg.RecordingDir
}

// restore reads the jobs in dir.
func (s *Service) restore(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("recording folder: %w", err)
	}
	lost := map[string][]string{} // client -> its recordings interrupted now
	defer s.releaseLost(lost)
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		jdir := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(filepath.Join(jdir, stateFile))
		if err != nil {
			continue
		}
		var rec Recording
		if err := json.Unmarshal(data, &rec); err != nil || rec.ID != e.Name() {
			s.log.Warn("unreadable recording skipped", "dir", jdir, "err", err)
			continue
		}
		j := &job{svc: s, dir: jdir, rec: rec, stop: make(chan struct{}), done: make(chan struct{})}
		j.log = s.log.With("recording", rec.ID, "room", rec.Room)
		j.client = s.cfg.Client(rec.Client)
		close(j.done)
		if rec.State.active() {
			j.rec.Files = scanFiles(jdir, rec.Files)
			j.rec.Bytes = 0
			for _, f := range j.rec.Files {
				j.rec.Bytes += f.Size
			}
			j.rec.State = StateInterrupted
			j.rec.Reason = fmt.Sprintf("the recorder stopped while the recording was %s; its files are kept as they were", rec.State)
			now := time.Now().UTC()
			j.rec.EndedAt = &now
			j.save()
			if rec.Client != "" {
				lost[rec.Client] = append(lost[rec.Client], rec.ID)
			}
			s.log.Warn("recording interrupted", "recording", rec.ID, "room", rec.Room, "files", len(j.rec.Files))
			if rec.CallbackURL != "" {
				cb := newCallbacks(rec.CallbackURL, j.log)
				cb.post(j.snapshot())
				s.bg.Add(1)
				go func() {
					defer s.bg.Done()
					cb.close(callbackWait)
				}()
			}
		}
		s.jobs[rec.ID] = j
		s.metrics.state(j, j.rec.State)
	}
	return nil
}

// scanFiles lists the media files a dead job left, with their sizes and
// the durations their headers had at the last flush. A file whose first
// frames never reached the disk (the recorder died within a second of
// making it, before its first flush) holds nothing to play: it is removed.
func scanFiles(dir string, known []File) []File {
	byName := map[string]File{}
	for _, f := range known {
		byName[f.Name] = f
	}
	entries, _ := os.ReadDir(dir)
	var out []File
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if e.IsDir() || !validName(name) || (ext != ".webm" && ext != ".mkv") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		f := byName[name]
		f.Name, f.Size = name, info.Size()
		path := filepath.Join(dir, name)
		if mi, err := mkv.Inspect(path); err == nil {
			if !mi.Finished && mi.Duration == 0 {
				_ = os.Remove(path)
				continue
			}
			f.Duration = mi.Duration.Seconds()
		}
		out = append(out, f)
	}
	return out
}

// StartRequest is the body of a start.
type StartRequest struct {
	Room        string `json:"room"`
	CallbackURL string `json:"callbackUrl,omitempty"`
	// Compose overrides the client's FfmpegConfig.Compose.
	Compose *bool `json:"compose,omitempty"`
	// Client is the portal client an administrator starts for.
	Client string `json:"client,omitempty"`
}

// Start begins a recording for client c (nil: the administrator's own,
// with no slot limit).
func (s *Service) Start(c *config.RecorderClient, req StartRequest) (Recording, error) {
	if !validRoom(req.Room) {
		return Recording{}, fmt.Errorf("%w: room must be 1-128 characters of A-Z a-z 0-9 . _ -", ErrBadRequest)
	}
	if req.CallbackURL != "" {
		if err := sameOrigin(req.CallbackURL, c); err != nil {
			return Recording{}, err
		}
	}
	var ff config.Ffmpeg
	compose := false
	name := ""
	if c != nil {
		ff, compose, name = c.Ffmpeg, c.Ffmpeg.Compose, c.Username
	}
	if req.Compose != nil {
		compose = *req.Compose
	}
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return Recording{}, ErrDraining
	}
	if c != nil {
		var active []string
		stopping := 0
		for _, j := range s.jobs {
			if j.rec.Client == c.Username && j.state().active() {
				active = append(active, j.rec.ID)
				if j.state() == StateStopping {
					stopping++
				}
			}
		}
		if len(active) >= c.Slots {
			s.mu.Unlock()
			sort.Strings(active)
			return Recording{}, &SlotsFullError{Client: c.Username, Slots: c.Slots, Active: active, Stopping: stopping}
		}
	}
	id := newID()
	if c != nil && s.slots != nil {
		ok, holders, err := s.slots.Acquire(context.Background(), c.Username, id, c.Slots)
		if err != nil {
			s.mu.Unlock()
			return Recording{}, fmt.Errorf("%w: %v", ErrSlotsUnavailable, err)
		}
		if !ok {
			s.mu.Unlock()
			return Recording{}, &SlotsFullError{Client: c.Username, Slots: c.Slots, Active: holders}
		}
	}
	dir := filepath.Join(s.dirOf(c), id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.mu.Unlock()
		if c != nil && s.slots != nil {
			_ = s.slots.Release(context.Background(), c.Username, id)
		}
		return Recording{}, fmt.Errorf("recording folder: %w", err)
	}
	var cb *callbacks
	if req.CallbackURL != "" {
		cb = newCallbacks(req.CallbackURL, s.log.With("recording", id))
	}
	j := &job{
		svc: s, dir: dir, client: c, ffmpeg: ff, cb: cb,
		stop: make(chan struct{}), done: make(chan struct{}),
		rec: Recording{ID: id, Client: name, Room: req.Room, State: StateStarting, CreatedAt: time.Now().UTC(),
			CallbackURL: req.CallbackURL, Compose: compose, Files: []File{}},
	}
	j.log = s.log.With("recording", id, "room", req.Room)
	s.jobs[id] = j
	s.mu.Unlock()
	j.setState(StateStarting, "")
	go j.run()
	return j.snapshot(), nil
}

func (j *job) state() State {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.rec.State
}

func validRoom(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// sameOrigin checks that a callback goes to the client's own portal.
func sameOrigin(raw string, c *config.RecorderClient) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: callbackUrl must be an http(s) URL", ErrBadRequest)
	}
	if c == nil {
		return nil
	}
	h, err := url.Parse(c.Host)
	if err != nil || origin(u) != origin(h) {
		return fmt.Errorf("%w: callbackUrl must be on the client's Host %s", ErrBadRequest, c.Host)
	}
	return nil
}

func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return u.Scheme + "://" + u.Hostname() + ":" + port
}

func newID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// visible reports whether client c (nil: the administrator) sees j.
func visible(j *job, c *config.RecorderClient) bool {
	return c == nil || j.rec.Client == c.Username
}

// Get returns one recording, if c may see it.
func (s *Service) Get(c *config.RecorderClient, id string) (Recording, error) {
	j, err := s.find(c, id)
	if err != nil {
		return Recording{}, err
	}
	return j.snapshot(), nil
}

func (s *Service) find(c *config.RecorderClient, id string) (*job, error) {
	s.mu.Lock()
	j := s.jobs[id]
	s.mu.Unlock()
	if j == nil || !visible(j, c) {
		return nil, ErrNotFound
	}
	return j, nil
}

// List returns the recordings c sees, newest first.
func (s *Service) List(c *config.RecorderClient) []Recording {
	s.mu.Lock()
	var jobs []*job
	for _, j := range s.jobs {
		if visible(j, c) {
			jobs = append(jobs, j)
		}
	}
	s.mu.Unlock()
	out := make([]Recording, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, j.snapshot())
	}
	sort.Slice(out, func(a, b int) bool { return out[a].CreatedAt.After(out[b].CreatedAt) })
	return out
}

// Stop asks a recording to stop; it finishes in the background.
func (s *Service) Stop(c *config.RecorderClient, id string) (Recording, error) {
	j, err := s.find(c, id)
	if err != nil {
		return Recording{}, err
	}
	j.requestStop("stopped by " + who(c))
	// The answer shows the recording stopping (or ended) once it is.
	for deadline := time.Now().Add(500 * time.Millisecond); j.state() == StateRecording && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	return j.snapshot(), nil
}

func who(c *config.RecorderClient) string {
	if c == nil {
		return "the administrator"
	}
	return "client " + c.Username
}

// Delete removes a recording that has ended, and its files.
func (s *Service) Delete(c *config.RecorderClient, id string) error {
	j, err := s.find(c, id)
	if err != nil {
		return err
	}
	if j.state().active() {
		return ErrActive
	}
	s.mu.Lock()
	delete(s.jobs, id)
	s.mu.Unlock()
	s.metrics.forget(j)
	return os.RemoveAll(j.dir)
}

// FilePath is where a file of a recording is; name must be one of its
// files (no path ever leaves the recording's folder).
func (s *Service) FilePath(c *config.RecorderClient, id, name string) (string, error) {
	j, err := s.find(c, id)
	if err != nil {
		return "", err
	}
	if !validName(name) {
		return "", ErrNotFound
	}
	for _, f := range j.snapshot().Files {
		if f.Name == name {
			return filepath.Join(j.dir, name), nil
		}
	}
	return "", ErrNotFound
}

// Shutdown stops every recording and waits until each has finished its
// files (or ctx ends).
func (s *Service) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.drained()
	jobs := make([]*job, 0, len(s.jobs))
	for _, j := range s.jobs {
		jobs = append(jobs, j)
	}
	s.mu.Unlock()
	for _, j := range jobs {
		j.requestStop("the recorder shut down")
	}
	for _, j := range jobs {
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	bg := make(chan struct{})
	go func() {
		s.bg.Wait()
		close(bg)
	}()
	select {
	case <-bg:
	case <-ctx.Done():
		return ctx.Err()
	}
	if s.slots != nil {
		s.slots.Close()
	}
	return nil
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

func jwtSubject(sub string) jwt.RegisteredClaims {
	return jwt.RegisteredClaims{Subject: sub}
}
