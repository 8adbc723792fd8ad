package e2e

import (
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// vclass-load runs a short bounded load and reports the server's cost.
func TestLoadGenerator(t *testing.T) {
	srv := startMedia(t, loopbackConfig(34990, 34999, ""))
	out, err := exec.Command(loadBinary, "-url", srv.WS, "-subscribers", "3", "-warmup", "2s", "-duration", "2s").CombinedOutput()
	if err != nil {
		t.Fatalf("vclass-load: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`subscribers received (\d+) packets/s \(([\d.]+) %`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no receive figure in:\n%s", out)
	}
	if rate, _ := strconv.Atoi(string(m[1])); rate < 3*150 {
		t.Errorf("3 subscribers received %d packets/s, want about 3 × 210:\n%s", rate, out)
	}
	if !regexp.MustCompile(`server CPU per forwarded packet: [\d.]+ µs`).Match(out) {
		t.Errorf("no CPU figure in:\n%s", out)
	}
}
