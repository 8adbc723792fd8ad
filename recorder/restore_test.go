package recorder

import (
	"os"
	"path/filepath"
	"testing"

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
