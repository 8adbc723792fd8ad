package logs

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The level sets what is logged; "none" logs nothing.
func TestLogLevel(t *testing.T) {
	tests := []struct {
		level         string
		info, warning bool
	}{
		{"debug", true, true},
		{"info", true, true},
		{"warn", false, true},
		{"error", false, false},
		{"none", false, false},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		log, closeLog, err := New(tt.level, "", "test", &out)
		if err != nil {
			t.Fatal(err)
		}
		log.Info("an info line")
		log.Warn("a warning")
		closeLog()
		if got := strings.Contains(out.String(), "an info line"); got != tt.info {
			t.Errorf("level %s: info logged = %v", tt.level, got)
		}
		if got := strings.Contains(out.String(), "a warning"); got != tt.warning {
			t.Errorf("level %s: warning logged = %v", tt.level, got)
		}
	}
}

// With a folder, lines also go to NAME.log there as JSON.
func TestLogFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	var out bytes.Buffer
	log, closeLog, err := New("info", dir, "svc", &out)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("to the file", "n", 1)
	closeLog()
	data, err := os.ReadFile(filepath.Join(dir, "svc.log"))
	if err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	if err := json.Unmarshal(bytes.TrimSpace(data), &line); err != nil || line["msg"] != "to the file" {
		t.Errorf("log file line %q: %v", data, err)
	}
}
