package config

import (
	"errors"
	"reflect"
	"testing"
)

func envOf(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name  string
		file  string // testdata file; the embedded default when ""
		env   map[string]string
		check func(t *testing.T, m *Media)
	}{
		{"nothing set", "", map[string]string{EnvHTTPAddr: "", EnvRTCPorts: " "}, func(t *testing.T, m *Media) {
			if want := DefaultMedia(); !reflect.DeepEqual(m, want) {
				t.Errorf("changed:\n got %+v\nwant %+v", m, want)
			}
		}},
		{"announced IP on every listen", "shape2-upstream.json", map[string]string{EnvAnnouncedIP: "203.0.113.9"}, func(t *testing.T, m *Media) {
			for i, l := range m.RTC.Listen {
				if l.AnnouncedIP != "203.0.113.9" {
					t.Errorf("Listen[%d].AnnouncedIP = %q", i, l.AnnouncedIP)
				}
			}
			if len(m.RTC.Listen) != 3 {
				t.Errorf("%d listens", len(m.RTC.Listen))
			}
		}},
		{"announced 0.0.0.0 means detect", "shape1-shipped.json", map[string]string{EnvAnnouncedIP: "0.0.0.0"}, func(t *testing.T, m *Media) {
			if got := m.RTC.Listen[0].AnnouncedIP; got != "" {
				t.Errorf("AnnouncedIP = %q, want empty", got)
			}
		}},
		{"HTTP address", "", map[string]string{EnvHTTPAddr: "127.0.0.1:9000"}, func(t *testing.T, m *Media) {
			if m.HTTPAddr != "127.0.0.1:9000" {
				t.Errorf("HTTPAddr = %q", m.HTTPAddr)
			}
		}},
		{"log level", "", map[string]string{EnvLogLevel: " Debug "}, func(t *testing.T, m *Media) {
			if m.LogLevel != "debug" {
				t.Errorf("LogLevel = %q", m.LogLevel)
			}
		}},
		{"port range", "", map[string]string{EnvRTCPorts: "30000-30009"}, wantPorts(30000, 30009)},
		{"port range with spaces", "", map[string]string{EnvRTCPorts: " 30000 - 30009 "}, wantPorts(30000, 30009)},
		{"single port", "", map[string]string{EnvRTCPorts: "20000"}, wantPorts(20000, 20000)},
		{"ports replace per-listen ranges", "shape4-listeninfos.json", map[string]string{EnvRTCPorts: "50000-50010"}, func(t *testing.T, m *Media) {
			wantPorts(50000, 50010)(t, m)
			for i, l := range m.RTC.Listen {
				if l.MinPort != 0 || l.MaxPort != 0 {
					t.Errorf("Listen[%d] keeps its range %d-%d", i, l.MinPort, l.MaxPort)
				}
			}
		}},
		{"all three", "wt-docker-mediasoup_config.json", map[string]string{EnvAnnouncedIP: "2001:db8::7", EnvHTTPAddr: ":8080", EnvRTCPorts: "40000-40001"}, func(t *testing.T, m *Media) {
			wantPorts(40000, 40001)(t, m)
			if m.HTTPAddr != ":8080" || m.RTC.Listen[0].AnnouncedIP != "2001:db8::7" {
				t.Errorf("HTTPAddr %q AnnouncedIP %q", m.HTTPAddr, m.RTC.Listen[0].AnnouncedIP)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := DefaultMedia()
			if tt.file != "" {
				m = loadTestdata(t, tt.file)
			}
			if err := m.ApplyEnv(envOf(tt.env)); err != nil {
				t.Fatalf("ApplyEnv: %v", err)
			}
			tt.check(t, m)
		})
	}
}

func wantPorts(lo, hi uint16) func(t *testing.T, m *Media) {
	return func(t *testing.T, m *Media) {
		t.Helper()
		if m.RTC.MinPort != lo || m.RTC.MaxPort != hi {
			t.Errorf("ports %d-%d, want %d-%d", m.RTC.MinPort, m.RTC.MaxPort, lo, hi)
		}
	}
}

func TestApplyEnvErrors(t *testing.T) {
	const badPorts = " is not a port range like 20000-20009 or a port like 20000"
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"announced IP not an IP", map[string]string{EnvAnnouncedIP: "media.example.com"}, `VCLASS_ANNOUNCED_IP: "media.example.com" is not an IP address`},
		{"HTTP address without colon", map[string]string{EnvHTTPAddr: "8011"}, `VCLASS_HTTP_ADDR: "8011" is not a listen address like :8011 or 127.0.0.1:8011`},
		{"HTTP port not a number", map[string]string{EnvHTTPAddr: ":http-ish"}, `VCLASS_HTTP_ADDR: ":http-ish" is not a listen address like :8011 or 127.0.0.1:8011`},
		{"ports not numbers", map[string]string{EnvRTCPorts: "abc"}, `VCLASS_RTC_PORTS: "abc"` + badPorts},
		{"port too big", map[string]string{EnvRTCPorts: "70000"}, `VCLASS_RTC_PORTS: "70000"` + badPorts},
		{"port zero", map[string]string{EnvRTCPorts: "0-10"}, `VCLASS_RTC_PORTS: "0-10"` + badPorts},
		{"open range", map[string]string{EnvRTCPorts: "20000-"}, `VCLASS_RTC_PORTS: "20000-"` + badPorts},
		{"reversed range", map[string]string{EnvRTCPorts: "30009-30000"}, "VCLASS_RTC_PORTS: 30009 is above the maximum port 30000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DefaultMedia().ApplyEnv(envOf(tt.env))
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("err = %v (%T), want a *KeyError", err, err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestApplyEnvLeavesCopiesAlone(t *testing.T) {
	orig := loadTestdata(t, "shape2-upstream.json")
	cp := *orig
	if err := cp.ApplyEnv(envOf(map[string]string{EnvAnnouncedIP: "192.0.2.99", EnvRTCPorts: "30000-30001"})); err != nil {
		t.Fatal(err)
	}
	if orig.RTC.Listen[0].AnnouncedIP != "" {
		t.Errorf("the original's Listen changed: %+v", orig.RTC.Listen[0])
	}
	// The original still names its own file keys.
	orig.RTC.MinPort = 40000
	if err, want := orig.Validate(), "MediasoupSettings.WorkerSettings.RtcMinPort: 40000 is above the maximum port 29999"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}
