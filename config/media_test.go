package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func loadTestdata(t *testing.T, name string) *Media {
	t.Helper()
	m, err := LoadMedia(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("LoadMedia: %v", err)
	}
	return m
}

func mimeTypesOf(m *Media) []string {
	var out []string
	for _, c := range m.Codecs {
		out = append(out, c.MimeType)
	}
	return out
}

func TestFixtureAsShipped(t *testing.T) {
	m := loadTestdata(t, "wt-docker-mediasoup_config.json")
	if m.ServeMode != ServeOpen || m.AllowEmptyTickets || m.LogLevel != "error" || m.HTTPAddr != ":8011" {
		t.Errorf("ServeMode %q AllowEmptyTickets %v LogLevel %q HTTPAddr %q", m.ServeMode, m.AllowEmptyTickets, m.LogLevel, m.HTTPAddr)
	}
	if m.RTC.MinPort != 20000 || m.RTC.MaxPort != 20009 || m.RTC.WebRtcServer {
		t.Errorf("RTC %+v", m.RTC)
	}
	if want := []Listen{{IP: "0.0.0.0"}}; !reflect.DeepEqual(m.RTC.Listen, want) {
		t.Errorf("Listen %+v, want %+v (AnnouncedIp 0.0.0.0 means detect)", m.RTC.Listen, want)
	}
	wantMimes := []string{"audio/opus", "audio/PCMA", "video/VP8", "video/VP9", "video/H264", "video/H264"}
	if got := mimeTypesOf(m); !slices.Equal(got, wantMimes) {
		t.Errorf("codecs %v, want %v", got, wantMimes)
	}
	if len(m.Codecs) == 6 {
		h1, h2 := m.Codecs[4].Parameters["profile-level-id"], m.Codecs[5].Parameters["profile-level-id"]
		if h1 != "4d0032" || h2 != "42e01f" {
			t.Errorf("H264 profile-level-ids %q, %q", h1, h2)
		}
		if got := m.Codecs[4].Fmtp(); got != "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d0032;x-google-start-bitrate=1000" {
			t.Errorf("H264 fmtp %q", got)
		}
		if got := m.Codecs[3].Parameters["profile-id"]; got != "2" {
			t.Errorf("VP9 profile-id %q", got)
		}
	}
	want := Bitrate{InitialAvailableOutgoing: 600000, Throttling: "NoThrottling"}
	if m.Bitrate != want {
		t.Errorf("Bitrate %+v, want %+v (NoThrottling turns the limits off)", m.Bitrate, want)
	}
	for _, key := range []string{
		"MediasoupStartupSettings.MediasoupVersion",
		"MediasoupStartupSettings.WorkerPath",
		"MediasoupStartupSettings.WorkerInProcess",
		"MediasoupStartupSettings.NumberOfWorkers",
		"MediasoupSettings.WorkerSettings.LogTags",
		"MediasoupSettings.ServerNetworkLimits.PlainTransportSettings",
		"MediasoupSettings.ServerNetworkLimits.MaximumIncomingBitRatePerTransport",
	} {
		if !slices.Contains(m.Ignored, key) {
			t.Errorf("Ignored lacks %s: %q", key, m.Ignored)
		}
	}
	if m.Source != filepath.Join("testdata", "wt-docker-mediasoup_config.json") {
		t.Errorf("Source %q", m.Source)
	}
}

func TestShapes(t *testing.T) {
	videoFeedback := defaultFeedback("video")
	tests := []struct {
		file         string
		serveMode    ServeMode
		allowEmpty   bool
		logLevel     string
		minPort      uint16
		maxPort      uint16
		webRtcServer bool
		listen       []Listen
		mimes        []string
		bitrate      Bitrate
		ignored      []string
		check        func(t *testing.T, m *Media)
	}{{
		file:      "shape1-shipped.json",
		serveMode: ServeInvite, allowEmpty: true, logLevel: "warn", minPort: 40000, maxPort: 40099,
		listen:  []Listen{{IP: "0.0.0.0", AnnouncedIP: "203.0.113.7"}},
		mimes:   []string{"audio/opus", "audio/PCMU", "video/VP8"},
		bitrate: Bitrate{InitialAvailableOutgoing: 600000, MaxIncoming: 800000, MaxOutgoing: 1200000, Throttling: "Simple"},
		ignored: []string{
			"MediasoupStartupSettings.MediasoupVersion",
			"MediasoupStartupSettings.WorkerInProcess",
			"MediasoupStartupSettings.WorkerPath",
			"MediasoupStartupSettings.NumberOfWorkers",
			"mediasoupSettings.WorkerSettings.LogTags",
			"mediasoupSettings.ServerNetworkLimits.MaximumIncomingBitRate",
			"mediasoupSettings.ServerNetworkLimits.PlainTransportSettings",
		},
		check: func(t *testing.T, m *Media) {
			if c := m.Codecs[2]; c.Kind != "video" || c.ClockRate != 90000 || c.Channels != 0 || !reflect.DeepEqual(c.RTCPFeedback, videoFeedback) {
				t.Errorf("VP8 %+v", c)
			}
			if c := m.Codecs[0]; c.Channels != 2 {
				t.Errorf("opus channels %d", c.Channels)
			}
		},
	}, {
		file:      "shape2-upstream.json",
		serveMode: ServePull, logLevel: "debug", minPort: 20000, maxPort: 29999,
		listen:  []Listen{{IP: "192.0.2.10"}, {IP: "::", AnnouncedIP: "2001:db8::1"}, {IP: "127.0.0.1"}},
		mimes:   []string{"audio/opus", "audio/PCMA", "video/VP9", "video/H264"},
		bitrate: Bitrate{InitialAvailableOutgoing: 1000000, MaxIncoming: 1500000},
		ignored: []string{
			"MediasoupStartupSettings.MediasoupVersion",
			"MediasoupStartupSettings.WorkerInProcess",
			"MediasoupStartupSettings.WorkerPath",
			"MediasoupStartupSettings.NumberOfWorkers",
			"MediasoupSettings.WorkerSettings.LogTags",
			"MediasoupSettings.WebRtcTransportSettings.MinimumAvailableOutgoingBitrate",
			"MediasoupSettings.WebRtcTransportSettings.MaxSctpMessageSize",
			"MediasoupSettings.PlainTransportSettings",
		},
		check: func(t *testing.T, m *Media) {
			opus := m.Codecs[0]
			if want := []Feedback{{Type: "transport-cc"}, {Type: "nack"}}; !reflect.DeepEqual(opus.RTCPFeedback, want) {
				t.Errorf("opus feedback %+v", opus.RTCPFeedback)
			}
			if got := opus.Fmtp(); got != "usedtx=1;useinbandfec=1" {
				t.Errorf("opus fmtp %q", got)
			}
			if pcma := m.Codecs[1]; pcma.PreferredPayloadType != 8 || pcma.Channels != 1 {
				t.Errorf("PCMA %+v", pcma)
			}
			if vp9 := m.Codecs[2]; vp9.PreferredPayloadType != 101 || vp9.RTCPFeedback == nil || len(vp9.RTCPFeedback) != 0 {
				t.Errorf("VP9: an empty RtcpFeedback means none: %+v", vp9)
			}
		},
	}, {
		file:      "shape3-webrtcserver.json",
		serveMode: ServeInvite, allowEmpty: true, logLevel: "none", minPort: 20000, maxPort: 29999, webRtcServer: true,
		listen: []Listen{
			{Protocol: "udp", IP: "0.0.0.0", Port: 44444},
			{Protocol: "tcp", IP: "0.0.0.0", AnnouncedIP: "198.51.100.4", Port: 44444},
		},
		mimes:   []string{"audio/opus", "video/VP8", "video/AV1"},
		bitrate: Bitrate{InitialAvailableOutgoing: 1000000, MaxIncoming: 1500000},
		ignored: []string{
			"MediasoupStartupSettings.MediasoupVersion",
			"MediasoupStartupSettings.WorkerInProcess",
			"MediasoupStartupSettings.NumberOfWorkers",
			"MediasoupSettings.WebRtcTransportSettings.ListenInfos",
		},
	}, {
		file:      "shape4-listeninfos.json",
		serveMode: ServePull, logLevel: "warn", minPort: 40000, maxPort: 40099,
		listen: []Listen{
			{Protocol: "udp", IP: "0.0.0.0", AnnouncedIP: "203.0.113.50", MinPort: 40000, MaxPort: 40049},
			{Protocol: "tcp", IP: "0.0.0.0", MinPort: 40050, MaxPort: 40099},
		},
		mimes:   []string{"audio/opus", "audio/G722", "video/H264"},
		bitrate: Bitrate{InitialAvailableOutgoing: 800000},
		ignored: []string{},
		check: func(t *testing.T, m *Media) {
			h264 := m.Codecs[2]
			if want := []Feedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}; !reflect.DeepEqual(h264.RTCPFeedback, want) {
				t.Errorf("H264 feedback %+v", h264.RTCPFeedback)
			}
			if got := h264.Fmtp(); got != "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f" {
				t.Errorf("H264 fmtp %q", got)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			m := loadTestdata(t, tt.file)
			if m.ServeMode != tt.serveMode || m.AllowEmptyTickets != tt.allowEmpty || m.LogLevel != tt.logLevel {
				t.Errorf("ServeMode %q AllowEmptyTickets %v LogLevel %q", m.ServeMode, m.AllowEmptyTickets, m.LogLevel)
			}
			if m.RTC.MinPort != tt.minPort || m.RTC.MaxPort != tt.maxPort || m.RTC.WebRtcServer != tt.webRtcServer {
				t.Errorf("RTC ports %d-%d WebRtcServer %v", m.RTC.MinPort, m.RTC.MaxPort, m.RTC.WebRtcServer)
			}
			if !reflect.DeepEqual(m.RTC.Listen, tt.listen) {
				t.Errorf("Listen\n got %+v\nwant %+v", m.RTC.Listen, tt.listen)
			}
			if got := mimeTypesOf(m); !slices.Equal(got, tt.mimes) {
				t.Errorf("codecs %v, want %v", got, tt.mimes)
			}
			if m.Bitrate != tt.bitrate {
				t.Errorf("Bitrate %+v, want %+v", m.Bitrate, tt.bitrate)
			}
			if !slices.Equal(m.Ignored, tt.ignored) {
				t.Errorf("Ignored\n got %q\nwant %q", m.Ignored, tt.ignored)
			}
			if tt.check != nil && len(m.Codecs) == len(tt.mimes) {
				tt.check(t, m)
			}
		})
	}
}

func TestShapeFilesUseTheExtensions(t *testing.T) {
	// The shape files exist to exercise the parser's extensions; keep them doing so.
	var bom bool
	for _, name := range []string{"shape1-shipped.json", "shape2-upstream.json", "shape3-webrtcserver.json", "shape4-listeninfos.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		s := string(data)
		bom = bom || strings.HasPrefix(s, "\uFEFF")
		if !strings.Contains(s, "//") && !strings.Contains(s, "/*") {
			t.Errorf("%s has no comment", name)
		}
		if !strings.Contains(strings.Join(strings.Fields(s), ""), ",}") && !strings.Contains(strings.Join(strings.Fields(s), ""), ",]") {
			t.Errorf("%s has no trailing comma", name)
		}
	}
	if !bom {
		t.Error("no shape file starts with a BOM")
	}
}

func TestDefaultMedia(t *testing.T) {
	m := DefaultMedia()
	if m.Source != "embedded default" || m.HTTPAddr != ":8011" || m.ServeMode != ServeOpen || !m.AllowEmptyTickets || m.LogLevel != "info" {
		t.Errorf("Source %q HTTPAddr %q ServeMode %q AllowEmptyTickets %v LogLevel %q", m.Source, m.HTTPAddr, m.ServeMode, m.AllowEmptyTickets, m.LogLevel)
	}
	if m.RTC.MinPort != 20000 || m.RTC.MaxPort != 20009 || m.RTC.WebRtcServer {
		t.Errorf("RTC %+v", m.RTC)
	}
	if want := []Listen{{IP: "0.0.0.0"}}; !reflect.DeepEqual(m.RTC.Listen, want) {
		t.Errorf("Listen %+v", m.RTC.Listen)
	}
	var got []string
	for _, c := range m.Codecs {
		got = append(got, fmt.Sprintf("%s/%d/%d %s", c.MimeType, c.ClockRate, c.Channels, c.Fmtp()))
	}
	want := []string{
		"audio/opus/48000/2 ",
		"video/VP8/90000/0 ",
		"video/VP9/90000/0 profile-id=0",
		"video/H264/90000/0 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	}
	if !slices.Equal(got, want) {
		t.Errorf("codecs\n got %q\nwant %q", got, want)
	}
	if len(m.Ignored) != 0 {
		t.Errorf("the default file has ignored keys: %q", m.Ignored)
	}
	// Each call returns its own value.
	m.RTC.Listen[0].IP = "127.0.0.1"
	if DefaultMedia().RTC.Listen[0].IP != "0.0.0.0" {
		t.Error("DefaultMedia shares state between calls")
	}
}

// brokenBase is a valid upstream-shaped file; %s is the codec list.
const brokenBase = `{
  "MediasoupSettings": {
    "WorkerSettings": { "LogLevel": "warn", "RtcMinPort": 20000, "RtcMaxPort": 20009 },
    "RouterSettings": { "RtpCodecCapabilities": [ %s ] },
    "WebRtcTransportSettings": {
      "ListenIps": [ { "Ip": "0.0.0.0", "AnnouncedIp": "" } ]
    }
  },
  "MeetingServerSettings": { "ServeMode": "Open" },
  "AuthSettings": { "AllowEmptyTickets": false }
}`

const (
	opus     = `{ "Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "Channels": 2 }`
	vp8      = `{ "Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000 }`
	twoCodec = opus + ", " + vp8
	codecs   = "MediasoupSettings.RouterSettings.RtpCodecCapabilities"
	listen0  = "MediasoupSettings.WebRtcTransportSettings.ListenIps[0]"
	worker   = "MediasoupSettings.WorkerSettings"
)

func TestBrokenMedia(t *testing.T) {
	tests := []struct {
		name     string
		codecs   string // the codec list; twoCodec when ""
		old, new string // one replacement in the file
		want     string // the whole message, or the path followed by ": " when it starts with "~"
	}{
		{"port out of range", "", `"RtcMinPort": 20000`, `"RtcMinPort": 70000`, worker + ".RtcMinPort: 70000 is not a port"},
		{"port not a number", "", `"RtcMaxPort": 20009`, `"RtcMaxPort": "many"`, worker + `.RtcMaxPort: "many" is not a port`},
		{"port zero", "", `"RtcMaxPort": 20009`, `"RtcMaxPort": 0`, worker + `.RtcMaxPort: 0 is not a port`},
		{"min above max", "", `"RtcMinPort": 20000`, `"RtcMinPort": "20010"`, worker + ".RtcMinPort: 20010 is above the maximum port 20009"},
		{"bad IP", "", `"Ip": "0.0.0.0"`, `"Ip": "0.0.0.300"`, listen0 + `.Ip: "0.0.0.300" is not an IP address`},
		{"missing IP", "", `"Ip": "0.0.0.0", `, ``, listen0 + ".Ip: is missing"},
		{"bad announced IP", "", `"AnnouncedIp": ""`, `"AnnouncedIp": "media.example.com"`,
			listen0 + `.AnnouncedIp: "media.example.com" is not an IP address (leave it empty to detect the host's)`},
		{"both announced keys", "", `"AnnouncedIp": ""`, `"AnnouncedIp": "", "AnnouncedAddress": "192.0.2.1"`,
			listen0 + ".AnnouncedAddress: is also given as " + listen0 + ".AnnouncedIp; keep one"},
		{"bad protocol", "", `{ "Ip"`, `{ "Protocol": "sctp", "Ip"`, listen0 + `.Protocol: "sctp" is not udp or tcp`},
		{"no listen", "", `[ { "Ip": "0.0.0.0", "AnnouncedIp": "" } ]`, `[]`, "MediasoupSettings.WebRtcTransportSettings.ListenIps: needs at least one address"},
		{"ListenIps and ListenInfos", "", `"ListenIps"`, `"ListenInfos": [], "ListenIps"`,
			"MediasoupSettings.WebRtcTransportSettings.ListenInfos: is also given as MediasoupSettings.WebRtcTransportSettings.ListenIps; keep one"},
		{"unknown serve mode", "", `"ServeMode": "Open"`, `"ServeMode": "Broadcast"`, `MeetingServerSettings.ServeMode: "Broadcast" is not one of Open, Pull, Invite`},
		{"unknown log level", "", `"LogLevel": "warn"`, `"LogLevel": "verbose"`, worker + `.LogLevel: "verbose" is not one of debug, info, warn, error, none`},
		{"bool not a bool", "", `"AllowEmptyTickets": false`, `"AllowEmptyTickets": "nope"`, `AuthSettings.AllowEmptyTickets: "nope" is not true or false`},
		{"bool as number", "", `"AllowEmptyTickets": false`, `"AllowEmptyTickets": 0`, `AuthSettings.AllowEmptyTickets: 0 is a number, expected true or false`},
		{"section in two places", "", `"WorkerSettings"`, `"MeetingServerSettings": { "ServeMode": "Pull" }, "WorkerSettings"`,
			"MediasoupSettings.MeetingServerSettings: is also given at MeetingServerSettings; keep one"},
		{"duplicate key", "", `"RtcMinPort": 20000`, `"RtcMinPort": 20000, "rtcMinPort": 20001`,
			worker + ".RtcMinPort: duplicate key: first at line 3:45, again at line 3:66 (keys are case-insensitive)"},
		{"section of the wrong type", "", `"WorkerSettings": {`, `"WorkerSettings": "none", "Old": {`, worker + `: "none" is a string, expected an object`},
		{"web rtc server without settings", "", `"MeetingServerSettings"`, `"MediasoupStartupSettings": { "UseWebRtcServer": "true" }, "MeetingServerSettings"`,
			"MediasoupSettings.WebRtcServerSettings: is missing, but MediasoupStartupSettings.UseWebRtcServer is true"},
		{"web rtc server without port", "", `"MediasoupSettings": {`,
			`"MediasoupStartupSettings": { "UseWebRtcServer": true }, "MediasoupSettings": {
			"WebRtcServerSettings": { "ListenInfos": [ { "Protocol": "udp", "Ip": "0.0.0.0" } ] },`,
			"~MediasoupSettings.WebRtcServerSettings.ListenInfos[0].Port"},
		{"web rtc server without listens", "", `"MediasoupSettings": {`,
			`"MediasoupStartupSettings": { "UseWebRtcServer": true }, "MediasoupSettings": { "WebRtcServerSettings": {},`,
			"MediasoupSettings.WebRtcServerSettings.ListenInfos: is missing, but MediasoupStartupSettings.UseWebRtcServer is true"},
		{"port range reversed", "", `"ListenIps": [ { "Ip": "0.0.0.0", "AnnouncedIp": "" } ]`,
			`"ListenInfos": [ { "Ip": "0.0.0.0", "PortRange": { "Min": 40010, "Max": 40000 } } ]`,
			"MediasoupSettings.WebRtcTransportSettings.ListenInfos[0].PortRange.Min: 40010 is above the maximum port 40000"},
		{"port range half", "", `"ListenIps": [ { "Ip": "0.0.0.0", "AnnouncedIp": "" } ]`,
			`"ListenInfos": [ { "Ip": "0.0.0.0", "PortRange": { "Min": 40010 } } ]`,
			"~MediasoupSettings.WebRtcTransportSettings.ListenInfos[0].PortRange.Max"},
		{"no codec", " ", "", "", codecs + ": has no codec"},
		{"no codec list", "", `"RtpCodecCapabilities": [ ` + twoCodec + ` ]`, `"Other": 1`, codecs + ": has no codec"},
		{"no video codec", opus, "", "", codecs + ": has no video codec"},
		{"no audio codec", vp8, "", "", codecs + ": has no audio codec"},
		{"bad kind", `{ "Kind": "text", "MimeType": "audio/opus", "ClockRate": 48000 }, ` + vp8, "", "",
			codecs + `[0].Kind: "text" is not audio or video`},
		{"kind and mime type disagree", opus + `, { "Kind": "audio", "MimeType": "video/VP8", "ClockRate": 90000 }`, "", "",
			codecs + `[1].MimeType: "video/VP8" does not match the kind "audio"`},
		{"unknown mime type", opus + `, { "Kind": "video", "MimeType": "video/H265", "ClockRate": 90000 }`, "", "",
			codecs + `[1].MimeType: "video/H265" is not a supported codec (audio/opus, audio/PCMA, audio/PCMU, audio/G722, video/VP8, video/VP9, video/H264, video/AV1)`},
		{"clock rate 0", opus + `, { "Kind": "video", "MimeType": "video/VP8", "ClockRate": 0 }`, "", "", codecs + "[1].ClockRate: 0 is not a clock rate"},
		{"clock rate missing", opus + `, { "Kind": "video", "MimeType": "video/VP8" }`, "", "", codecs + "[1].ClockRate: 0 is not a clock rate"},
		{"clock rate not a number", opus + `, { "Kind": "video", "MimeType": "video/VP8", "ClockRate": "fast" }`, "", "",
			codecs + `[1].ClockRate: "fast" is not a whole number`},
		{"audio without channels", `{ "Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "Channels": 0 }, ` + vp8, "", "",
			codecs + "[0].Channels: 0 is not a channel count"},
		{"payload type not dynamic", `{ "Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "PreferredPayloadType": 50 }, ` + vp8, "", "",
			codecs + "[0].PreferredPayloadType: 50 is not a dynamic payload type (96-127)"},
		{"payload type out of range", `{ "Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "PreferredPayloadType": 300 }, ` + vp8, "", "",
			codecs + "[0].PreferredPayloadType: 300 is out of range 0-255"},
		{"static payload type of another codec", `{ "Kind": "audio", "MimeType": "audio/PCMA", "ClockRate": 8000, "PreferredPayloadType": 9 }, ` + vp8, "", "",
			codecs + "[0].PreferredPayloadType: 9 is not a dynamic payload type (96-127)"},
		{"payload type twice", `{ "Kind": "audio", "MimeType": "audio/opus", "ClockRate": 48000, "PreferredPayloadType": 100 }, ` +
			`{ "Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000, "PreferredPayloadType": "100" }`, "", "",
			codecs + "[1].PreferredPayloadType: 100 is already taken by " + codecs + "[0]"},
		{"parameters not an object", opus + `, { "Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000, "Parameters": [1] }`, "", "",
			codecs + "[1].Parameters: is an array, expected an object"},
		{"parameter not a scalar", opus + `, { "Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000, "Parameters": { "a": {} } }`, "", "",
			codecs + "[1].Parameters.a: is an object, expected a string"},
		{"feedback without type", opus + `, { "Kind": "video", "MimeType": "video/VP8", "ClockRate": 90000, "RtcpFeedback": [ { "Parameter": "pli" } ] }`, "", "",
			codecs + "[1].RtcpFeedback[0].Type: is missing"},
		{"codec not an object", opus + `, "video/VP8"`, "", "", codecs + `[1]: "video/VP8" is a string, expected an object`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list := tt.codecs
			if list == "" {
				list = twoCodec
			}
			doc := fmt.Sprintf(brokenBase, list)
			if tt.old != "" || tt.new != "" {
				if !strings.Contains(doc, tt.old) {
					t.Fatalf("the base file lacks %q", tt.old)
				}
				doc = strings.Replace(doc, tt.old, tt.new, 1)
			}
			_, err := ParseMedia([]byte(doc), "broken.json")
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("err = %v (%T), want a *KeyError", err, err)
			}
			if path, ok := strings.CutPrefix(tt.want, "~"); ok {
				if ke.Path != path {
					t.Errorf("path %q, want %q (%v)", ke.Path, path, err)
				}
				return
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}

func TestBrokenBaseIsValid(t *testing.T) {
	m, err := ParseMedia(fmt.Appendf(nil, brokenBase, twoCodec), "base.json")
	if err != nil {
		t.Fatal(err)
	}
	// AllowEmptyTickets and WebRtcServer default to the safe values when absent.
	m2, err := ParseMedia([]byte(`{"MediasoupSettings": {"RouterSettings": {"RtpCodecCapabilities": [`+twoCodec+`]}}}`), "minimal.json")
	if err != nil {
		t.Fatal(err)
	}
	if m2.AllowEmptyTickets || m2.ServeMode != ServeOpen || m2.LogLevel != "info" || m2.RTC.MinPort != 10000 || m2.RTC.MaxPort != 59999 {
		t.Errorf("defaults: %+v", m2)
	}
	if want := []Listen{{IP: "0.0.0.0"}}; !reflect.DeepEqual(m2.RTC.Listen, want) {
		t.Errorf("default Listen %+v", m2.RTC.Listen)
	}
	_ = m
}

func TestParseMediaSyntaxError(t *testing.T) {
	_, err := ParseMedia([]byte("{\n  \"MediasoupSettings\": {\n    \"WorkerSettings\": { \"RtcMinPort\": 20000 \"RtcMaxPort\": 20009 }\n  }\n}"), "x.json")
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *SyntaxError", err)
	}
	want := `line 3:45: expected ',' or '}' after the value of "RtcMinPort", found '"'`
	if se.Line != 3 || se.Col != 45 || err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
}

func TestLoadMediaErrors(t *testing.T) {
	if _, err := LoadMedia(filepath.Join(t.TempDir(), "absent.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("absent file: %v, want fs.ErrNotExist", err)
	}
	path := filepath.Join(t.TempDir(), "mediasoup_config.json")
	doc := strings.Replace(fmt.Sprintf(brokenBase, twoCodec), "20000", "70000", 1)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadMedia(path)
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Path != worker+".RtcMinPort" {
		t.Fatalf("err = %v, want a *KeyError at RtcMinPort", err)
	}
	if want := path + ": " + worker + ".RtcMinPort: 70000 is not a port"; err.Error() != want {
		t.Errorf("error\n got %s\nwant %s", err, want)
	}
}

func TestValidateNamesWhereValuesCameFrom(t *testing.T) {
	// A value loaded from a file is named by its key in that file.
	m := loadTestdata(t, "wt-docker-mediasoup_config.json")
	m.Codecs[3].ClockRate = 0
	if err, want := m.Validate(), "MediasoupSettings.RouterSettings.RtpCodecCapabilities[3].ClockRate: 0 is not a clock rate"; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	// A Media built in code is named by JSON field paths.
	hand := &Media{
		HTTPAddr: ":0", LogLevel: "info", ServeMode: ServePull,
		RTC:     RTC{MinPort: 5000, MaxPort: 5001, Listen: []Listen{{IP: "127.0.0.1", AnnouncedIP: "0.0.0.0"}}},
		Codecs:  []Codec{{Kind: "audio", MimeType: "audio/opus", ClockRate: 48000, Channels: 2}, {Kind: "video", MimeType: "video/VP8", ClockRate: 90000}},
		Bitrate: Bitrate{InitialAvailableOutgoing: 1},
	}
	if err, want := hand.Validate(), `rtc.listen[0].announcedIp: "0.0.0.0" is not an IP address (leave it empty to detect the host's)`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	hand.RTC.Listen[0].AnnouncedIP = ""
	if err := hand.Validate(); err != nil {
		t.Errorf("valid hand-built Media: %v", err)
	}
	for _, tt := range []struct {
		name   string
		change func(m *Media)
		want   string
	}{
		{"codec spelling", func(m *Media) { m.Codecs[1].MimeType = "video/vp8" }, `codecs[1].mimeType: "video/vp8" is not a supported codec`},
		{"video channels", func(m *Media) { m.Codecs[1].Channels = 2 }, "codecs[1].channels: 2 is set on a video codec"},
		{"serve mode spelling", func(m *Media) { m.ServeMode = "open" }, `serveMode: "open" is not one of Open, Pull, Invite`},
		{"no listen", func(m *Media) { m.RTC.Listen = nil }, "rtc.listen: needs at least one address"},
		{"min port 0", func(m *Media) { m.RTC.MinPort = 0 }, "rtc.minPort: is missing while the maximum port is set"},
		{"bitrate", func(m *Media) { m.Bitrate.MaxOutgoing = -1 }, "bitrate.maxOutgoing: -1 is not a bit rate"},
		{"http address", func(m *Media) { m.HTTPAddr = "" }, `httpAddr: "" is not a listen address`},
		{"web rtc server port", func(m *Media) { m.RTC.WebRtcServer = true }, "rtc.listen[0].port: is missing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := *hand
			c.Codecs = slices.Clone(hand.Codecs)
			c.RTC.Listen = slices.Clone(hand.RTC.Listen)
			tt.change(&c)
			if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %v, want %s...", err, tt.want)
			}
		})
	}
}

func TestFmtp(t *testing.T) {
	tests := []struct {
		params map[string]string
		want   string
	}{
		{nil, ""},
		{map[string]string{"profile-id": "0"}, "profile-id=0"},
		{map[string]string{"b": "2", "a": "1", "c": "x"}, "a=1;b=2;c=x"},
		{map[string]string{"flag": "", "a": "1"}, "a=1;flag"},
	}
	for _, tt := range tests {
		if got := (Codec{Parameters: tt.params}).Fmtp(); got != tt.want {
			t.Errorf("Fmtp(%v) = %q, want %q", tt.params, got, tt.want)
		}
	}
}

func TestServeModeValid(t *testing.T) {
	for mode, want := range map[ServeMode]bool{ServeOpen: true, ServePull: true, ServeInvite: true, "open": false, "": false} {
		if mode.Valid() != want {
			t.Errorf("%q.Valid() = %v", mode, !want)
		}
	}
}
