package sfu

import (
	"strings"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// simOffer is a Chromium-like offer whose camera m-line publishes
// simulcast by SSRC: three SSRCs, each with its RTX.
const simOffer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n" +
	"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11\r\n" +
	"a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r\n" +
	"a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n" +
	"a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r\n" +
	"a=msid:s t\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n" +
	"a=ssrc-group:FID 100 101\r\na=ssrc:100 cname:c\r\na=ssrc:100 msid:s t\r\na=ssrc:101 cname:c\r\n" +
	"a=ssrc:200 cname:c\r\na=ssrc:201 cname:c\r\na=ssrc-group:FID 200 201\r\n" +
	"a=ssrc:300 cname:c\r\na=ssrc:301 cname:c\r\na=ssrc-group:FID 300 301\r\n" +
	"a=ssrc-group:SIM 100 200 300\r\n"

func TestRIDsFromSIM(t *testing.T) {
	d, err := checkDescription(simOffer)
	if err != nil {
		t.Fatal(err)
	}
	named, mids, err := ridsFromSIM(d)
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint32]ssrcLayer{100: {"sim0", false}, 101: {"sim0", true}, 200: {"sim1", false}, 201: {"sim1", true}, 300: {"sim2", false}, 301: {"sim2", true}}
	if len(named) != len(want) {
		t.Fatalf("named %v, want %v", named, want)
	}
	for s, l := range want {
		if named[s] != l {
			t.Errorf("SSRC %d: %+v, want %+v", s, named[s], l)
		}
	}
	if added, ok := mids["0"]; !ok || added {
		t.Errorf("mids %v, want 0 rewritten with its own rid extensions", mids)
	}
	m := d.MediaDescriptions[0]
	if v, _ := m.Attribute("simulcast"); v != "send sim0;sim1;sim2" {
		t.Errorf("a=simulcast:%s", v)
	}
	for _, a := range m.Attributes {
		if a.Key == "ssrc" || a.Key == "ssrc-group" {
			t.Errorf("a=%s:%s left in", a.Key, a.Value)
		}
	}
	if rids := simulcastSendRIDs("send sim0;sim1;sim2"); len(rids) != 3 {
		t.Errorf("rids %v", rids)
	}
	// An offer without SIM, or with rids already, is left as it is.
	plain := strings.Replace(simOffer, "a=ssrc-group:SIM 100 200 300\r\n", "", 1)
	d2, _ := checkDescription(plain)
	if named, mids, err := ridsFromSIM(d2); err != nil || len(named) != 0 || len(mids) != 0 {
		t.Errorf("plain offer: %v %v %v", named, mids, err)
	}
	// The answer says nothing of rids.
	answer := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n" +
		"a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\na=rid:sim0 recv\r\na=rid:sim1 recv\r\na=simulcast:recv sim0;sim1\r\n"
	out, err := dropRIDs(answer, mids)
	if err != nil || strings.Contains(out, "a=rid") || strings.Contains(out, "a=simulcast") || !strings.Contains(out, "rtp-stream-id") {
		t.Errorf("answer:\n%s (%v)", out, err)
	}
}

// The first packets of a named SSRC carry its rid (and of its RTX, the
// repaired rid); other SSRCs pass untouched.
func TestRIDInjector(t *testing.T) {
	var layers ssrcLayers
	layers.m.Store(uint32(200), ssrcLayer{rid: "sim1"})
	layers.m.Store(uint32(201), ssrcLayer{rid: "sim1", repair: true})
	i, _ := ridInjectorFactory{layers: &layers}.NewInterceptor("")
	exts := []interceptor.RTPHeaderExtension{{URI: sdp.SDESRTPStreamIDURI, ID: 10}, {URI: sdp.SDESRepairRTPStreamIDURI, ID: 11}}
	for _, tt := range []struct {
		ssrc uint32
		id   uint8
		want string
	}{{200, 10, "sim1"}, {201, 11, "sim1"}, {300, 10, ""}} {
		pkt := &rtp.Packet{Header: rtp.Header{Version: 2, SSRC: tt.ssrc, SequenceNumber: 7, PayloadType: 96}, Payload: []byte{1, 2, 3}}
		raw, _ := pkt.Marshal()
		r := i.BindRemoteStream(&interceptor.StreamInfo{SSRC: tt.ssrc, RTPHeaderExtensions: exts},
			interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
				return copy(b, raw), a, nil
			}))
		for k := range injectPackets + 1 {
			buf := make([]byte, 1500)
			n, _, err := r.Read(buf, nil)
			if err != nil {
				t.Fatal(err)
			}
			var got rtp.Packet
			if err := got.Unmarshal(buf[:n]); err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if k == injectPackets {
				want = "" // only the first packets
			}
			if rid := string(got.Header.GetExtension(tt.id)); rid != want || string(got.Payload) != "\x01\x02\x03" || got.SequenceNumber != 7 {
				t.Fatalf("SSRC %d packet %d: rid %q payload %v seq %d, want rid %q", tt.ssrc, k, rid, got.Payload, got.SequenceNumber, want)
			}
		}
	}
}
