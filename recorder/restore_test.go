package recorder

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vclass/vclass/config"
	"github.com/vclass/vclass/recorder/mkv"
)

// A recorder killed within a second of starting a file, before its first
// flush, leaves a file with nothing to play: after the restart it is not
// listed, and is gone. A file whose first frames reached the disk is listed.
func TestScanFilesLeavesOutHeadersAlone(t *testing.T) {
	dir := t.TempDir()
	empty, err := mkv.Create(filepath.Join(dir, "Ann.webm"), mkv.OpusTrack("mic", 2))
	if err != nil {
		t.Fatal(err)
	}
	empty.Abandon() // as a kill leaves it: the header, no frame yet
	w, err := mkv.Create(filepath.Join(dir, "Bob.webm"), mkv.OpusTrack("mic", 2))
	if err != nil {
		t.Fatal(err)
	}
	for ms := int64(0); ms < 1000; ms += 20 {
		if err := w.WriteFrame(1, ms, true, make([]byte, 40)); err != nil {
			t.Fatal(err)
		}
	}
	w.SetEnd(1000)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	w.Abandon()

	files := scanFiles(dir, nil)
	if len(files) != 1 || files[0].Name != "Bob.webm" || files[0].Duration < 0.9 {
		t.Errorf("files %+v, want Bob.webm alone, with its second", files)
	}
	if _, err := os.Stat(filepath.Join(dir, "Ann.webm")); !os.IsNotExist(err) {
		t.Errorf("the header-only file is still there: %v", err)
	}
}

// A recording a killed recorder left running is marked interrupted at the
// next start, and its callback is told. A shutdown soon after waits for
// that callback instead of leaving it behind, still sending.
func TestShutdownWaitsForInterruptedCallbacks(t *testing.T) {
	var (
		mu  sync.Mutex
		got []Recording
	)
	portal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond) // a slow portal
		var rec Recording
		if err := json.NewDecoder(r.Body).Decode(&rec); err != nil {
			t.Errorf("callback body: %v", err)
		}
		mu.Lock()
		got = append(got, rec)
		mu.Unlock()
	}))
	defer portal.Close()

	dir := t.TempDir()
	const id = "20261205-120000-0badf00d"
	data, _ := json.Marshal(Recording{ID: id, Room: "math", State: StateRecording, CallbackURL: portal.URL})
	if err := os.MkdirAll(filepath.Join(dir, id), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, id, stateFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := New(Params{Config: &config.Recorder{RecordingDir: dir}, FFmpeg: "/nonexistent/ffmpeg"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := svc.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].ID != id || got[0].State != StateInterrupted {
		t.Fatalf("callbacks delivered by the end of Shutdown: %+v, want the recording's, interrupted", got)
	}
}
