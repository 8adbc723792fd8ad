package e2e

import (
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// vclass-load runs a short bounded load and reports the server's cost,
// then times joins to the first camera frame.
func TestLoadGenerator(t *testing.T) {
	srv := startMedia(t, loopbackConfig(22990, 22999, ""))
	out, err := exec.Command(loadBinary, "-url", srv.WS, "-subscribers", "3", "-warmup", "2s", "-duration", "2s",
		"-joins", "2", "-join-gap", "600ms").CombinedOutput()
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
	// Two more clients joined in turn and each got a whole camera frame.
	if !regexp.MustCompile(`joins 2, from dialing: .*first camera frame p50 [\d.]+m?s`).Match(out) {
		t.Errorf("no join figures in:\n%s", out)
	}
}

// vclass-load -lean: subscribers that take packets by their headers
// receive all that the server sends (every number counted, none lost on
// loopback, one in ten authenticated and none forged) and time each
// frame's first packet against the publisher's clock.
func TestLeanLoadGenerator(t *testing.T) {
	srv := startMedia(t, loopbackConfig(22970, 22979, ""))
	out, err := exec.Command(loadBinary, "-url", srv.WS, "-lean", "-verify-every", "10", "-audio",
		"-subscribers", "5", "-warmup", "3s", "-duration", "3s").CombinedOutput()
	if err != nil {
		t.Fatalf("vclass-load -lean: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`subscribers received (\d+) packets/s`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no receive figure in:\n%s", out)
	}
	if rate, _ := strconv.Atoi(string(m[1])); rate < 5*200 {
		t.Errorf("5 subscribers received %d packets/s, want about 5 × (210 video + 50 audio):\n%s", rate, out)
	}
	m = regexp.MustCompile(`lean: 10 tracks, lost (\d+) of (\d+) \(.*\), duplicates \d+, forged (\d+), unchecked ([\d.]+) %`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no lean counts (10 tracks) in:\n%s", out)
	}
	lost, _ := strconv.Atoi(string(m[1]))
	forged, _ := strconv.Atoi(string(m[3]))
	unchecked, _ := strconv.ParseFloat(string(m[4]), 64)
	if lost != 0 || forged != 0 || unchecked < 85 || unchecked > 95 {
		t.Errorf("lost %d, forged %d, unchecked %.1f %%: want 0, 0 and about 90 %%:\n%s", lost, forged, unchecked, out)
	}
	m = regexp.MustCompile(`p50 ([\d.]+)(µs|ms|s),`).FindSubmatch(out)
	if m == nil || string(m[2]) == "s" {
		t.Errorf("no latency under a second in:\n%s", out)
	}
	t.Logf("%s", out)
}

// vclass-load -rooms puts many small classes on the server: in 2 rooms of
// 3, every member receives the other two's camera and microphone, and
// nothing crosses between rooms.
func TestLoadGeneratorRooms(t *testing.T) {
	srv := startMedia(t, loopbackConfig(22580, 22589, ""))
	out, err := exec.Command(loadBinary, "-url", srv.WS, "-rooms", "2", "-per-room", "3", "-lean", "-audio",
		"-fps", "15", "-frame-bytes", "2200", "-warmup", "3s", "-duration", "3s").CombinedOutput()
	if err != nil {
		t.Fatalf("vclass-load -rooms: %v\n%s", err, out)
	}
	// 6 members × 2 others × (video + audio)
	m := regexp.MustCompile(`lean: 24 tracks, lost (\d+) of (\d+) \(.*\), duplicates \d+, forged (\d+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no lean counts (24 tracks) in:\n%s", out)
	}
	lost, _ := strconv.Atoi(string(m[1]))
	expected, _ := strconv.Atoi(string(m[2]))
	forged, _ := strconv.Atoi(string(m[3]))
	// 12 video tracks of 30 packets/s, 12 audio of 50, for 3 s
	if lost != 0 || forged != 0 || expected < 12*(30+50)*3*9/10 {
		t.Errorf("lost %d of %d, forged %d: want 0 of about %d, 0:\n%s", lost, expected, forged, 12*(30+50)*3, out)
	}
	t.Logf("%s", out)
}
