package client

import (
	"bytes"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/vclass/vclass/internal/rtpfb"
)

// testDirect is a direct path past its handshake, with verifyEvery, and
// the server's SRTP context for the same keys.
func testDirect(t *testing.T, profile srtp.ProtectionProfile, verifyEvery int) (*directRecv, *srtp.Context, netip.AddrPort) {
	t.Helper()
	keyLen, err := profile.KeyLen()
	if err != nil {
		t.Fatal(err)
	}
	saltLen, err := profile.SaltLen()
	if err != nil {
		t.Fatal(err)
	}
	key, salt := bytes.Repeat([]byte{7}, keyLen), bytes.Repeat([]byte{9}, saltLen)
	server, err := srtp.CreateContext(key, salt, profile)
	if err != nil {
		t.Fatal(err)
	}
	d := newDirectRecv(slog.New(slog.DiscardHandler), 0, verifyEvery)
	t.Cleanup(d.close)
	if d.ctx, err = srtp.CreateContext(key, salt, profile, srtp.SRTPReplayProtection(2*rtpfb.NackWindow)); err != nil { // as haveContext makes it
		t.Fatal(err)
	}
	d.peer = netip.MustParseAddrPort("127.0.0.1:5000")
	d.helloSeen.Store(true)
	return d, server, d.peer
}

// A direct stream's packets are decrypted in place and delivered with
// their arrival; the first may come after the sequence number rolled over;
// a packet that is not the server's is dropped; the missing are asked for
// again, and every packet of the transport from the server counts for
// congestion control, whichever path takes it.
func TestDirectPathTakesItsStreams(t *testing.T) {
	d, server, peer := testDirect(t, srtp.ProtectionProfileAeadAes128Gcm, 1)
	d.setTWCC(3)

	type got struct {
		seq     uint16
		payload []byte
		at      time.Time
	}
	var delivered []got
	const ssrc, other = 1111, 2222
	d.register(ssrc, true, func(p []byte, at time.Time) {
		var pkt rtp.Packet
		if err := pkt.Unmarshal(p); err != nil {
			t.Errorf("delivered %x: %v", p, err)
			return
		}
		delivered = append(delivered, got{pkt.SequenceNumber, bytes.Clone(pkt.Payload), at})
	})
	twccSeq := uint16(100)
	seal := func(ssrc uint32, seq uint16, roc uint32) []byte {
		h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: 3000 * uint32(seq), SSRC: ssrc}
		_ = h.SetExtension(3, []byte{byte(twccSeq >> 8), byte(twccSeq)})
		twccSeq++
		server.SetROC(ssrc, roc)
		plain, err := (&rtp.Packet{Header: h, Payload: []byte{byte(seq), 0xab, 0xcd}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		b, err := server.EncryptRTP(nil, plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	now := time.Now()
	// The server's numbering rolled over just before the direct path took
	// the stream: its first packet is in rollover count 1.
	for _, seq := range []uint16{2, 3, 6} { // 4 and 5 lost
		if !d.handle(seal(ssrc, seq, 1), peer, now) {
			t.Fatalf("packet %d left to Pion", seq)
		}
	}
	forged := seal(ssrc, 7, 1)
	forged[len(forged)-1] ^= 1
	if !d.handle(forged, peer, now) {
		t.Fatal("a forged packet of a direct stream left to Pion")
	}
	if d.handle(seal(other, 50, 0), peer, now) {
		t.Fatal("a packet of a stream not registered taken")
	}
	if d.handle([]byte{0x81, 0xc8, 0, 6, 0, 0, 0x04, 0x57, 1, 2, 3, 4}, peer, now) {
		t.Fatal("an RTCP packet taken")
	}
	// A stream registered after its numbering rolled over twice does not
	// decrypt here: its packets go on to Pion, soon without trying.
	const late = 3333
	d.register(late, true, func([]byte, time.Time) { t.Error("a packet of the late stream delivered") })
	for seq := range uint16(giveUp + 10) {
		if d.handle(seal(late, seq, 2), peer, now) {
			t.Fatalf("late stream's packet %d taken", seq)
		}
	}
	if len(delivered) != 3 {
		t.Fatalf("delivered %d packets, want 3", len(delivered))
	}
	for i, seq := range []uint16{2, 3, 6} {
		if g := delivered[i]; g.seq != seq || !bytes.Equal(g.payload, []byte{byte(seq), 0xab, 0xcd}) || !g.at.Equal(now) {
			t.Errorf("delivered %d: seq %d payload %x at %v", i, g.seq, g.payload, g.at)
		}
	}
	d.mu.Lock() // the feedback loop reads them too
	defer d.mu.Unlock()
	missing := d.streams[ssrc].nack.Missing(nil)
	if !slices.Equal(missing, []uint16{4, 5}) {
		t.Errorf("missing %v, want [4 5]", missing)
	}
	// The forged packet did not count; the other stream's did.
	fb := d.twcc.BuildFeedbackPacket()
	if len(fb) != 1 {
		t.Fatalf("%d feedback packets", len(fb))
	}
	cc := fb[0].(*rtcp.TransportLayerCC)
	if n := 5 + giveUp + 10; cc.BaseSequenceNumber != 100 || int(cc.PacketStatusCount) != n {
		t.Errorf("feedback from %d for %d packets, want from 100 for %d (100-102, 103 forged, then the others)", cc.BaseSequenceNumber, cc.PacketStatusCount, n)
	}
	var received int
	for _, c := range cc.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			if c.PacketStatusSymbol != rtcp.TypeTCCPacketNotReceived {
				received += int(c.RunLength)
			}
		case *rtcp.StatusVectorChunk:
			for _, s := range c.SymbolList {
				if s != rtcp.TypeTCCPacketNotReceived {
					received++
				}
			}
		}
	}
	if want := 4 + giveUp + 10; received != want {
		t.Errorf("feedback says %d received, want %d", received, want)
	}
}

// A stream read for its headers with VerifyEvery 4 decrypts its first
// packet and every fourth after it; the others are taken by their header:
// numbers and gaps still seen (and asked for again), a forged packet found
// when it falls on a checked place, and taken unseen between two.
func TestHeadersOnlyPathChecksASample(t *testing.T) {
	d, server, peer := testDirect(t, srtp.ProtectionProfileAes128CmHmacSha1_80, 4)
	const ssrc = 4444
	var got []PacketInfo
	d.registerInfo(ssrc, true, func(i PacketInfo) { got = append(got, i) })
	seal := func(seq uint16) []byte {
		plain, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: 90 * uint32(seq), Marker: seq%3 == 0, SSRC: ssrc},
			Payload: bytes.Repeat([]byte{byte(seq)}, 100)}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		b, err := server.EncryptRTP(nil, plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	forge := func(seq uint16) []byte {
		b := seal(seq)
		b[20] ^= 0xff // the payload changed: the tag no longer matches
		return b
	}
	now := time.Now()
	// Sent: 1..13 with 7 lost, 10 and 11 forged. Checked: 1 (the first),
	// then every fourth taken after it: 5, and 10 (found forged); 11 is
	// taken unseen.
	for seq := uint16(1); seq <= 13; seq++ {
		var b []byte
		switch seq {
		case 7:
			continue
		case 10, 11:
			b = forge(seq)
		default:
			b = seal(seq)
		}
		if !d.handle(b, peer, now) {
			t.Fatalf("packet %d left to Pion", seq)
		}
	}
	// Packet 5 again, twice: the first copy falls on a checked place
	// (the 12th taken after the first), where SRTP refuses it; the
	// second is taken unseen.
	copy5 := seal(5)
	d.handle(bytes.Clone(copy5), peer, now)
	d.handle(bytes.Clone(copy5), peer, now)
	want := []struct {
		seq   uint16
		check Check
	}{{1, Authentic}, {2, Unchecked}, {3, Unchecked}, {4, Unchecked}, {5, Authentic}, {6, Unchecked}, {8, Unchecked},
		{9, Unchecked}, {10, Forged}, {11, Unchecked}, {12, Unchecked}, {13, Unchecked}, {5, Replayed}, {5, Unchecked}}
	if len(got) != len(want) {
		t.Fatalf("told of %d packets, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if g := got[i]; g.Seq != w.seq || g.Check != w.check || g.Timestamp != 90*uint32(w.seq) || g.Marker != (w.seq%3 == 0) || !g.Arrival.Equal(now) {
			t.Errorf("packet %d: %+v, want seq %d check %d", i, g, w.seq, w.check)
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if missing := d.streams[ssrc].nack.Missing(nil); !slices.Equal(missing, []uint16{7, 10}) {
		t.Errorf("missing %v, want [7 10] (lost, and forged)", missing)
	}
}
