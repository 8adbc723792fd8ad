package sfu

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// The keys the direct path learns from the DTLS hooks are the keys DTLS
// itself exports, whatever the cipher suite's hash, with and without the
// extended master secret, for each SRTP profile the server offers.
func TestDTLSKeysMatchTheHandshake(t *testing.T) {
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		suite   dtls.CipherSuiteID
		ems     dtls.ExtendedMasterSecretType
		profile dtls.SRTPProtectionProfile
	}{
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, dtls.RequireExtendedMasterSecret, dtls.SRTP_AEAD_AES_128_GCM},
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, dtls.RequireExtendedMasterSecret, dtls.SRTP_AEAD_AES_256_GCM},
		{dtls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA, dtls.DisableExtendedMasterSecret, dtls.SRTP_AES128_CM_HMAC_SHA1_80},
	} {
		t.Run(fmt.Sprintf("%v/%v", dtls.CipherSuiteName(tt.suite), tt.profile), func(t *testing.T) {
			sc, cc := listenLoopback(t), listenLoopback(t)
			var keys dtlsKeys
			type result struct {
				c   *dtls.Conn
				err error
			}
			done := make(chan result, 1)
			go func() {
				c, err := dtls.ServerWithOptions(sc, cc.LocalAddr(),
					dtls.WithCertificates(cert), dtls.WithCipherSuites(tt.suite), dtls.WithExtendedMasterSecret(tt.ems),
					dtls.WithSRTPProtectionProfiles(tt.profile), dtls.WithKeyLogWriter(&keys),
					dtls.WithServerHelloMessageHook(keys.serverHello))
				if err == nil {
					err = c.HandshakeContext(context.Background())
				}
				done <- result{c, err}
			}()
			client, err := dtls.ClientWithOptions(cc, sc.LocalAddr(),
				dtls.WithCertificates(cert), dtls.WithInsecureSkipVerify(true), dtls.WithCipherSuites(tt.suite),
				dtls.WithExtendedMasterSecret(tt.ems), dtls.WithSRTPProtectionProfiles(tt.profile))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { client.Close() })
			if err := client.HandshakeContext(context.Background()); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			t.Cleanup(func() { r.c.Close() })
			state, ok := r.c.ConnectionState()
			if !ok {
				t.Fatal("no connection state")
			}
			want, err := state.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 60)
			if err != nil {
				t.Fatal(err)
			}
			got, err := keys.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 60)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("exported %x, %v; DTLS exports %x", got, err, want)
			}
			k, err := keys.srtpKeys()
			if err != nil {
				t.Fatal(err)
			}
			if uint16(k.profile) != uint16(tt.profile) {
				t.Errorf("profile %v, want %v", k.profile, tt.profile)
			}
		})
	}
}

// A hello not sent as the server leaves no keys: that transport keeps
// Pion's path.
func TestDTLSKeysOnlyAsServer(t *testing.T) {
	var keys dtlsKeys
	_, _ = keys.Write([]byte("CLIENT_RANDOM " + fmt.Sprintf("%064x", 1) + " " + fmt.Sprintf("%096x", 2) + "\n"))
	if _, err := keys.srtpKeys(); err == nil {
		t.Fatal("keys without a server hello")
	}
	keys.serverHello(handshake.MessageServerHello{})
	if _, err := keys.srtpKeys(); err == nil {
		t.Fatal("keys without an SRTP profile")
	}
}

// On the engine's batching sockets a subscriber's packets take the direct
// path once DTLS is up, and a plain Pion peer connection decrypts every
// one of them, in order; with NoBatching they go through Pion.
func TestDirectPathDelivers(t *testing.T) {
	for _, noBatching := range []bool{false, true} {
		t.Run(fmt.Sprintf("noBatching=%v", noBatching), func(t *testing.T) {
			e := newLoopbackEngine(t, 35100, 35109, noBatching)
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
			seq := uint16(0)
			for ready := false; !ready; seq++ {
				up.handle(&r, vp8Packet(seq, uint32(seq)*3000, true))
				select {
				case <-receiving:
					ready = true
				case <-time.After(20 * time.Millisecond):
				}
			}
			// Connected (when the path is taken) may come just after the first packet.
			deadline := time.Now().Add(2 * time.Second)
			k, _ := sub.direct.take()
			for ; k == nil && !noBatching && time.Now().Before(deadline); k, _ = sub.direct.take() {
				time.Sleep(10 * time.Millisecond)
			}
			if (k != nil) == noBatching {
				if sub.direct != nil {
					_, err := sub.direct.keys.srtpKeys()
					t.Logf("keys: %v; route %v; state %v; cryptex %v srtp %v", err, sub.direct.route.Load(), sub.pc.ConnectionState(), sub.direct.cryptex.Load(), sub.direct.srtp.Load())
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

// What the direct path sends decrypts to exactly the packet Pion would
// have marshalled (padding and header extensions included, cryptex on
// or off), and a context made anew when cryptex changes keeps each
// stream's rollover count.
func TestSRTPOutWritesWhatPionWould(t *testing.T) {
	bc := newBatchConn(listenLoopback(t))
	dst := listenLoopback(t)
	route := &udpRoute{conn: bc, to: dst.LocalAddr().(*net.UDPAddr).AddrPort()}
	keys := &srtpKeys{profile: srtp.ProtectionProfileAeadAes128Gcm, key: bytes.Repeat([]byte{1}, 16), salt: bytes.Repeat([]byte{2}, 12)}
	withExt := rtp.Header{Version: 2, SSRC: 7, PayloadType: 96, SequenceNumber: 65534, Timestamp: 9}
	if err := withExt.SetExtension(3, []byte{0xaa, 0xbb}); err != nil {
		t.Fatal(err)
	}
	var out srtpOut
	buf := make([]byte, 2000)
	for i, tt := range []struct {
		h       rtp.Header
		payload []byte
		cryptex bool
	}{
		{rtp.Header{Version: 2, SSRC: 7, PayloadType: 96, SequenceNumber: 65533, Timestamp: 9, Marker: true}, []byte("media"), false},
		{withExt, []byte("media with an extension"), false},
		{rtp.Header{Version: 2, Padding: true, PaddingSize: 255, SSRC: 7, PayloadType: 96, SequenceNumber: 65535, Timestamp: 9}, nil, false},
		{withExt, []byte("past the rollover, encrypted extension"), true},
	} {
		h := tt.h
		if i == 3 {
			h.SequenceNumber = 0 // the stream wrapped: the rollover count is 1
		}
		if _, err := out.write(keys, tt.cryptex, route, &h, tt.payload); err != nil {
			t.Fatal(err)
		}
		_ = dst.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := dst.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		mode := srtp.CryptexModeDisabled
		if tt.cryptex {
			mode = srtp.CryptexModeEnabled
		}
		rx, err := srtp.CreateContext(keys.key, keys.salt, keys.profile, srtp.Cryptex(mode))
		if err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			rx.SetROC(7, 1)
		}
		plain, err := rx.DecryptRTP(nil, buf[:n], nil)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		want, err := (&rtp.Packet{Header: h, Payload: tt.payload}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(plain, want) {
			t.Errorf("packet %d decrypts to\n%x, want\n%x", i, plain, want)
		}
		if ext := bytes.Contains(buf[:n], []byte{0xaa, 0xbb}); h.Extension && ext == tt.cryptex {
			t.Errorf("packet %d: extension in the clear %v with cryptex %v", i, ext, tt.cryptex)
		}
	}
}
