package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// candidateLog collects the server candidates a participant is sent.
type candidateLog struct {
	mu    sync.Mutex
	addrs []string // "ip port"
}

func (l *candidateLog) watch(p *participant) {
	p.c.On("iceCandidate", func(data json.RawMessage) {
		var n struct {
			Candidate *webrtc.ICECandidateInit `json:"candidate"`
		}
		if json.Unmarshal(data, &n) != nil || n.Candidate == nil {
			return
		}
		// "candidate:1 1 udp 2130706431 127.0.0.1 22000 typ host ..."
		f := strings.Fields(n.Candidate.Candidate)
		if len(f) >= 6 {
			l.mu.Lock()
			l.addrs = append(l.addrs, f[4]+" "+f[5])
			l.mu.Unlock()
		}
	})
}

func (l *candidateLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.addrs...)
}

// exchange joins n publishing Go clients to one room and waits until each
// receives the others' video; cands collects the server's candidates.
func exchange(t *testing.T, srv *mediaServer, room string, n int, cands *candidateLog) []*participant {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	var ps []*participant
	for i := range n {
		p := joinParticipant(t, ctx, srv.WS, room, fmt.Sprintf("p%d", i), false)
		if cands != nil {
			cands.watch(p)
		}
		publishSynthetic(t, ctx, p.c, p.c.PeerID)
		ps = append(ps, p)
	}
	for _, p := range ps {
		for _, o := range ps {
			if o != p {
				key := o.c.PeerID + "/video:cam"
				waitFor(t, 15*time.Second, "video flowing", func() bool { return p.count(key) > 10 })
			}
		}
	}
	return ps
}

func httpPort(t *testing.T, srv *mediaServer) int {
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	return port
}

// With a small RtcMinPort..RtcMaxPort range, every candidate the server
// sends and every socket it holds for media lies in the range.
func TestMediaStaysInPortRange(t *testing.T) {
	const lo, hi = 22000, 22004
	srv := startMedia(t, loopbackConfig(lo, hi, ""))
	var cands candidateLog
	exchange(t, srv, "ports", 3, &cands)
	got := cands.list()
	if len(got) == 0 {
		t.Fatal("the server sent no candidate")
	}
	for _, c := range got {
		ip, portText, _ := strings.Cut(c, " ")
		port, _ := strconv.Atoi(portText)
		if port < lo || port > hi || ip != "127.0.0.1" {
			t.Errorf("candidate %s outside 127.0.0.1:%d-%d", c, lo, hi)
		}
	}
	httpP := httpPort(t, srv)
	for _, s := range processSockets(t, srv.cmd.Process.Pid) {
		inRange := s.port >= lo && s.port <= hi
		if strings.HasPrefix(s.proto, "udp") && !inRange {
			t.Errorf("UDP socket on port %d outside %d-%d", s.port, lo, hi)
		}
		if strings.HasPrefix(s.proto, "tcp") && !inRange && s.port != httpP {
			t.Errorf("TCP socket on port %d is neither media (%d-%d) nor HTTP (%d)", s.port, lo, hi, httpP)
		}
	}
}

// Single-port mode (UseWebRtcServer): three peers share one UDP port.
func TestSinglePortServesThreePeers(t *testing.T) {
	const port = 22100
	cfg := fmt.Sprintf(`{
  "MediasoupStartupSettings": {"UseWebRtcServer": true},
  "MediasoupSettings": {
    "WorkerSettings": {"RtcMinPort": 22110, "RtcMaxPort": 22119},
    "RouterSettings": {"RtpCodecCapabilities": [
      {"Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "Channels": 2},
      {"Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000}]},
    "WebRtcServerSettings": {"ListenInfos": [
      {"Protocol": "udp", "Ip": "127.0.0.1", "AnnouncedIp": "127.0.0.1", "Port": %d}]}
  },
  "MeetingServerSettings": {"ServeMode": "Open"},
  "AuthSettings": {"AllowEmptyTickets": true}
}`, port)
	srv := startMedia(t, cfg)
	var cands candidateLog
	exchange(t, srv, "one-port", 3, &cands)
	for _, c := range cands.list() {
		if c != fmt.Sprintf("127.0.0.1 %d", port) {
			t.Errorf("candidate %s, want only 127.0.0.1 %d", c, port)
		}
	}
	var udp []int
	for _, s := range processSockets(t, srv.cmd.Process.Pid) {
		if strings.HasPrefix(s.proto, "udp") {
			udp = append(udp, s.port)
		}
	}
	if len(udp) != 1 || udp[0] != port {
		t.Errorf("UDP sockets on ports %v, want exactly [%d]", udp, port)
	}
}

// AnnouncedIp replaces the bind address in the server's candidates.
func TestAnnouncedIPInCandidates(t *testing.T) {
	cfg := strings.Replace(loopbackConfig(22200, 22209, ""), `"AnnouncedIp": "127.0.0.1"`, `"AnnouncedIp": "127.0.0.77"`, 1)
	srv := startMedia(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cands candidateLog
	a := joinParticipant(t, ctx, srv.WS, "announce", "a", false)
	cands.watch(a)
	publishSynthetic(t, ctx, a.c, "a")
	waitFor(t, 10*time.Second, "a server candidate", func() bool { return len(cands.list()) > 0 })
	for _, c := range cands.list() {
		if !strings.HasPrefix(c, "127.0.0.77 ") {
			t.Errorf("candidate %s does not carry the announced address 127.0.0.77", c)
		}
	}
}
