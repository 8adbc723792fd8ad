package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLimitsDefaults(t *testing.T) {
	l := DefaultMedia().Limits
	if l.ConnectionsPerIP != 200 || l.MessageBytes != 256<<10 || l.PeersPerRoom != 500 || l.ProducersPerPeer != 8 ||
		l.RoomsPerNode != 1000 || l.ReadHeaderTimeout != 10*time.Second || l.IdleTimeout != 2*time.Minute {
		t.Errorf("defaults %+v", l)
	}
	if len(l.TrustedProxies) != len(defaultTrustedProxies) || !l.TrustedProxies[0].Contains(netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("trusted proxies %v", l.TrustedProxies)
	}
	if got := LimitEnv("MaxPeersPerRoom"); got != "VCLASS_LIMIT_MAX_PEERS_PER_ROOM" {
		t.Errorf("LimitEnv = %s", got)
	}
}

func TestLimitsFromFileAndEnv(t *testing.T) {
	m, err := ParseMedia(withLimits(`{"maxpeersperroom": "30", "MessagesPerSecond": 2.5, "ReadTimeoutSeconds": 0.5,
	                    "TrustedProxies": ["10.1.2.3", "fd00::/8"]}`), "t.json")
	if err != nil {
		t.Fatal(err)
	}
	l := m.Limits
	if l.PeersPerRoom != 30 || l.MessagesPerSecond != 2.5 || l.ReadTimeout != 500*time.Millisecond || l.ConnectionsPerIP != 200 {
		t.Errorf("from the file: %+v", l)
	}
	if got, want := fmt.Sprint(l.TrustedProxies), "[10.1.2.3/32 fd00::/8]"; got != want {
		t.Errorf("trusted proxies %s, want %s", got, want)
	}
	err = m.ApplyEnv(envOf(map[string]string{"VCLASS_LIMIT_MAX_PEERS_PER_ROOM": "0", "VCLASS_LIMIT_CONNECTIONS_PER_IP": "3", EnvTrustedProxies: " "}))
	if err != nil {
		t.Fatal(err)
	}
	if m.Limits.PeersPerRoom != 0 || m.Limits.ConnectionsPerIP != 3 || m.Limits.MessagesPerSecond != 2.5 {
		t.Errorf("after env: %+v", m.Limits)
	}
}

func TestLimitsRefused(t *testing.T) {
	for _, tc := range []struct{ file, env, want string }{
		{file: `{"MaxPeersPerRoom": -1}`, want: "LimitSettings.MaxPeersPerRoom: -1 must be 0 (no limit) or more"},
		{file: `{"MaxPeersPerRoom": 2.5}`, want: "LimitSettings.MaxPeersPerRoom: 2.5 must be a whole number"},
		{file: `{"IdleTimeoutSeconds": "soon"}`, want: "LimitSettings.IdleTimeoutSeconds"},
		{file: `{"TrustedProxies": ["nginx"]}`, want: `"nginx" is not an address or a prefix`},
		{env: "VCLASS_LIMIT_MESSAGE_BURST=lots", want: "VCLASS_LIMIT_MESSAGE_BURST: lots is not a number"},
		{env: "VCLASS_TRUSTED_PROXIES=10.0.0.0/33", want: "VCLASS_TRUSTED_PROXIES"},
	} {
		file := tc.file
		if file == "" {
			file = "{}"
		}
		m, err := ParseMedia(withLimits(file), "t.json")
		if err == nil && tc.env != "" {
			k, v, _ := strings.Cut(tc.env, "=")
			err = m.ApplyEnv(envOf(map[string]string{k: v}))
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s%s: error %v, want %q", tc.file, tc.env, err, tc.want)
		}
	}
}

// withLimits is the embedded default with a LimitSettings section at its root.
func withLimits(section string) []byte {
	s := string(defaultMediasoupConfig)
	end := strings.LastIndex(s, "}")
	return []byte(s[:end] + `, "LimitSettings": ` + section + "}")
}

func TestLimitSettingsGivenTwice(t *testing.T) {
	s := string(withLimits("{}"))
	s = strings.Replace(s, `"MediasoupSettings": {`, `"MediasoupSettings": {"LimitSettings": {},`, 1)
	if _, err := ParseMedia([]byte(s), "t.json"); err == nil || !strings.Contains(err.Error(), "is also given at") {
		t.Errorf("error %v", err)
	}
}

// docs/security.md names every limit with its variable and default.
func TestSecurityDocListsEveryLimit(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	for key, def := range LimitKeys() {
		row := fmt.Sprintf("| `%s` | `%s` | %s |", key, LimitEnv(key), strconv.FormatFloat(def, 'f', -1, 64))
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/security.md has no row starting %q", row)
		}
	}
}
