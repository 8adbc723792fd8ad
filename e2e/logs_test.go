package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// -log-dir (here as VCLASS_LOG_DIR, as the deployment sets it) writes JSON
// lines to vclass-media.log in that folder.
func TestLogDirGetsJSONLog(t *testing.T) {
	dir := t.TempDir()
	srv := startMedia(t, loopbackConfig(22960, 22969, ""), "VCLASS_LOG_DIR="+dir)
	srv.get(t, "/healthz")
	path := filepath.Join(dir, "vclass-media.log")
	var started map[string]any
	waitFor(t, 5*time.Second, "the start in "+path, func() bool {
		data, _ := os.ReadFile(path)
		for _, line := range strings.Split(string(data), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "vclass-media started" {
				started = rec
				return true
			}
		}
		return false
	})
	if started["level"] != "INFO" || started["serveMode"] != "Open" {
		t.Errorf("start record %v", started)
	}
}
