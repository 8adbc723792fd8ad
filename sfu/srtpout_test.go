package sfu

import (
	"bytes"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/vclass/vclass/internal/dtlssrtp"
)

// feedUntilReceiving feeds up a keyframe every 20 ms until the remote has
// the track (receiving is closed), and returns the next sequence number.
func feedUntilReceiving(r *upReader, up *UpTrack, receiving <-chan struct{}) uint16 {
	for seq := uint16(0); ; seq++ {
		up.handle(r, vp8Packet(seq, uint32(seq)*3000, true))
		select {
		case <-receiving:
			return seq + 1
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// On the engine's batching sockets a subscriber's packets take the direct
// path once DTLS is up, and a plain Pion peer connection decrypts every
// one of them, in order; with NoBatching they go through Pion.
func TestDirectPathDelivers(t *testing.T) {
	for _, noBatching := range []bool{false, true} {
		t.Run(fmt.Sprintf("noBatching=%v", noBatching), func(t *testing.T) {
			e := newLoopbackEngine(t, 29100, 29109, noBatching)
			up := testUpTrack("up", e, vp8Codec, 1111, 0, func([]rtcp.Packet) error { return nil })
			got := make(chan *rtp.Packet, 1000)
			sub, receiving := connectSubscriberWith(t, e, up, "d", func(tr *webrtc.TrackRemote) {
				for {
					p, _, err := tr.ReadRTP()
					if err != nil {
						return
					}
					got <- p
				}
			})
			r := upReader{level: 127}
			seq := feedUntilReceiving(&r, up, receiving)
			// Connected (when the path is taken) may come just after the first packet.
			deadline := time.Now().Add(2 * time.Second)
			k, _ := sub.direct.take()
			for ; k == nil && !noBatching && time.Now().Before(deadline); k, _ = sub.direct.take() {
				time.Sleep(10 * time.Millisecond)
			}
			if (k != nil) == noBatching {
				if sub.direct != nil {
					_, err := sub.direct.keys.Keys(false)
					t.Logf("keys: %v; route %v; state %v", err, sub.direct.route.Load(), sub.pc.ConnectionState())
				}
				t.Fatalf("direct path taken: %v, with NoBatching %v", k != nil, noBatching)
			}
			time.Sleep(50 * time.Millisecond)
			for len(got) > 0 {
				<-got
			}
			const n = 300
			for i := range n {
				pkt := vp8Packet(seq, uint32(seq)*3000, false)
				pkt = append(pkt, byte(i>>8), byte(i))
				up.handle(&r, pkt)
				seq++
				if i%10 == 9 {
					time.Sleep(2 * time.Millisecond) // a paced stream, not a burst into the receiver's buffers
				}
			}
			var last uint16
			timeout := time.After(5 * time.Second)
			for i := range n {
				select {
				case p := <-got:
					if i > 0 && p.SequenceNumber != last+1 {
						t.Fatalf("sequence %d after %d", p.SequenceNumber, last)
					}
					last = p.SequenceNumber
					if c := int(p.Payload[len(p.Payload)-2])<<8 | int(p.Payload[len(p.Payload)-1]); c != i {
						t.Fatalf("packet %d carries %d", i, c)
					}
				case <-timeout:
					t.Fatalf("%d of %d packets arrived", i, n)
				}
			}
		})
	}
}

// Once the direct path is taken, the subscriber's RTCP is read there, not
// through Pion: its PLI reaches the publisher, its NACKs are answered.
// Without the direct path (NoBatching) Pion's readers of each track do
// the same.
func TestDirectPathReadsRTCP(t *testing.T) {
	for i, noBatching := range []bool{false, true} {
		t.Run(fmt.Sprintf("noBatching=%v", noBatching), func(t *testing.T) {
			testReadsRTCP(t, uint16(29110+5*i), noBatching)
		})
	}
}

func testReadsRTCP(t *testing.T, ports uint16, noBatching bool) {
	e := newLoopbackEngine(t, ports, ports+4, noBatching)
	var plis atomic.Int32
	up := testUpTrack("up", e, vp8Codec, 1111, 0, func(pkts []rtcp.Packet) error {
		for _, p := range pkts {
			if _, ok := p.(*rtcp.PictureLossIndication); ok {
				plis.Add(1)
			}
		}
		return nil
	})
	var ssrc atomic.Uint32
	var lastSeq atomic.Int32
	lastSeq.Store(-1)
	sub, remote, receiving := connectRemote(t, e, up, "d", func(tr *webrtc.TrackRemote) {
		ssrc.Store(uint32(tr.SSRC()))
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			lastSeq.Store(int32(p.SequenceNumber))
		}
	})
	r := upReader{level: 127}
	feedUntilReceiving(&r, up, receiving)
	deadline := time.Now().Add(2 * time.Second)
	for sub.rtcpIn.Load() == nil && !noBatching || ssrc.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no direct RTCP reader after 2 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	taken := func() uint64 { return 0 }
	if x := sub.rtcpIn.Load(); x != nil {
		taken = x.taken.Load
	}
	sub.mu.Lock()
	for d := range sub.tracks {
		if d.pionReading != noBatching {
			t.Errorf("a goroutine reads the track's RTCP through Pion: %v, want %v", d.pionReading, noBatching)
		}
	}
	sub.mu.Unlock()
	before, plisBefore := taken(), plis.Load()
	up.lastKeyframeReq.Store(0)
	up.layer(0).lastKeyframeReq.Store(0)
	if err := remote.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc.Load()}}); err != nil {
		t.Fatal(err)
	}
	for plis.Load() == plisBefore {
		if time.Now().After(deadline.Add(time.Second)) {
			t.Fatal("the subscriber's PLI did not reach the publisher")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if taken() == before && !noBatching {
		t.Error("the PLI came through Pion, not the direct path")
	}
	retransmits := e.Stats.Retransmits.Load()
	nack := &rtcp.TransportLayerNack{MediaSSRC: ssrc.Load(), Nacks: rtcp.NackPairsFromSequenceNumbers([]uint16{uint16(lastSeq.Load())})}
	if err := remote.WriteRTCP([]rtcp.Packet{nack}); err != nil {
		t.Fatal(err)
	}
	for e.Stats.Retransmits.Load() == retransmits {
		if time.Now().After(deadline.Add(2 * time.Second)) {
			t.Fatal("a NACKed packet was not resent")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if taken() < before+2 && !noBatching {
		t.Errorf("%d packets taken on the direct path, want the PLI and the NACK", taken()-before)
	}
	if noBatching {
		return
	}
	// A forged packet (not sealed with the transport's keys) is refused.
	x := sub.rtcpIn.Load()
	refused, took := e.Stats.RTCPRefused.Load(), taken()
	forged := make([]byte, 40)
	copy(forged, []byte{0x81, 206, 0, 2, 0, 0, 0, 1, byte(ssrc.Load() >> 24), byte(ssrc.Load() >> 16), byte(ssrc.Load() >> 8), byte(ssrc.Load())})
	forged[12] = 0x80 // the SRTCP E flag
	x.readSRTCP(forged)
	if e.Stats.RTCPRefused.Load() != refused+1 || taken() != took {
		t.Errorf("a forged PLI: refused %d, taken %d; want it refused", e.Stats.RTCPRefused.Load()-refused, taken()-took)
	}
}

// What the direct path sends decrypts to exactly the packet Pion would
// have marshalled (padding and header extensions included); a stream
// goes on with the rollover count it had through Pion, never goes back
// to Pion once direct (its packets are dropped while there is no route),
// and takes up its count again when the route is back, however many
// packets were dropped.
func TestSRTPOutKeepsEachStreamsIndex(t *testing.T) {
	bc := newBatchConn(listenLoopback(t))
	dst := listenLoopback(t)
	route := &udpRoute{conn: bc, to: dst.LocalAddr().(*net.UDPAddr).AddrPort()}
	keys := &dtlssrtp.Keys{Profile: srtp.ProtectionProfileAeadAes128Gcm, LocalKey: bytes.Repeat([]byte{1}, 16), LocalSalt: bytes.Repeat([]byte{2}, 12)}
	rx, err := srtp.CreateContext(keys.LocalKey, keys.LocalSalt, keys.Profile)
	if err != nil {
		t.Fatal(err)
	}
	var out srtpOut
	pion := &recordingWriter{}
	buf := make([]byte, 2000)
	// send sends packet seq of stream ssrc, direct or not; a direct one
	// must decrypt, with the receiver's count rollovers, to what Pion
	// would marshal.
	send := func(ssrc uint32, seq uint16, ext, padding, direct bool, roc uint32) error {
		t.Helper()
		h := rtp.Header{Version: 2, SSRC: ssrc, PayloadType: 96, SequenceNumber: seq, Timestamp: 9, Marker: true}
		payload := []byte("media")
		if ext {
			if err := h.SetExtension(3, []byte{0xaa, 0xbb}); err != nil {
				t.Fatal(err)
			}
		}
		if padding {
			h.Padding, h.PaddingSize, payload = true, 255, nil
		}
		k, r := keys, route
		if !direct {
			k, r = nil, nil
		}
		before := len(pion.packets)
		if _, err := out.send(k, r, pion, &h, payload, make([]byte, sealSize)); err != nil {
			return err
		}
		if !direct {
			if len(pion.packets) != before+1 {
				t.Fatalf("packet %d of %d: not through Pion", seq, ssrc)
			}
			return nil
		}
		if len(pion.packets) != before {
			t.Fatalf("packet %d of %d: through Pion", seq, ssrc)
		}
		_ = dst.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := dst.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		rx.SetROC(ssrc, roc)
		plain, err := rx.DecryptRTP(nil, buf[:n], nil)
		if err != nil {
			t.Fatalf("packet %d of %d (rollover %d): %v", seq, ssrc, roc, err)
		}
		want, err := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(plain, want) {
			t.Errorf("packet %d of %d decrypts to\n%x, want\n%x", seq, ssrc, plain, want)
		}
		return nil
	}
	// Stream 7 starts through Pion and rolls over there, then goes direct.
	for _, seq := range []uint16{65533, 65534, 65535, 0} {
		if err := send(7, seq, false, false, false, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := send(7, 1, true, false, true, 1); err != nil {
		t.Fatal(err)
	}
	if err := send(7, 65535, false, false, true, 0); err != nil { // a late resend from before the rollover
		t.Fatal(err)
	}
	// Stream 9 (RTX) direct from its start, and a padding packet on 7.
	if err := send(9, 100, false, false, true, 0); err != nil {
		t.Fatal(err)
	}
	if err := send(7, 2, false, true, true, 1); err != nil {
		t.Fatal(err)
	}
	// No route: 7 went direct, so its packets are dropped, not sent through Pion.
	for seq := uint16(3); seq < 40000; seq += 1000 {
		if _, err := out.send(keys, nil, pion, &rtp.Header{Version: 2, SSRC: 7, SequenceNumber: seq}, nil, nil); err != errNoRoute {
			t.Fatalf("no route: %v", err)
		}
	}
	for _, seq := range []uint16{40003, 50003, 60003, 65003, 500} { // on, past the next rollover
		if _, err := out.send(keys, nil, pion, &rtp.Header{Version: 2, SSRC: 7, SequenceNumber: seq}, nil, nil); err != errNoRoute {
			t.Fatalf("no route: %v", err)
		}
	}
	// The route is back: the count goes on from the packets dropped.
	if err := send(7, 501, false, false, true, 2); err != nil {
		t.Fatal(err)
	}
	if err := send(9, 101, false, false, true, 0); err != nil {
		t.Fatal(err)
	}
}
