package dtlssrtp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
	"github.com/pion/dtls/v3/pkg/protocol/handshake"
)

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// wireReader hands each datagram the client reads to its Handshake, as a
// client's socket does.
type wireReader struct {
	net.PacketConn
	h     *Handshake
	hello atomic.Int32
}

func (w *wireReader) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := w.PacketConn.ReadFrom(b)
	if err == nil && w.h.ReadDatagram(b[:n]) {
		w.hello.Add(1)
	}
	return n, a, err
}

// The keys learnt from outside the handshake are the keys DTLS itself
// exports, whatever the cipher suite's hash, with and without the extended
// master secret, for each SRTP profile: on the server from its hooks, on
// the client from its key log and the server hello it read off the wire;
// and each side's remote keys are the other's local keys.
func TestKeysMatchTheHandshake(t *testing.T) {
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
			var server, client Handshake
			type result struct {
				c   *dtls.Conn
				err error
			}
			done := make(chan result, 1)
			go func() {
				c, err := dtls.ServerWithOptions(sc, cc.LocalAddr(),
					dtls.WithCertificates(cert), dtls.WithCipherSuites(tt.suite), dtls.WithExtendedMasterSecret(tt.ems),
					dtls.WithSRTPProtectionProfiles(tt.profile), dtls.WithKeyLogWriter(&server),
					dtls.WithServerHelloMessageHook(server.ServerHello))
				if err == nil {
					err = c.HandshakeContext(context.Background())
				}
				done <- result{c, err}
			}()
			wire := &wireReader{PacketConn: cc, h: &client}
			cconn, err := dtls.ClientWithOptions(wire, sc.LocalAddr(),
				dtls.WithCertificates(cert), dtls.WithInsecureSkipVerify(true), dtls.WithCipherSuites(tt.suite),
				dtls.WithExtendedMasterSecret(tt.ems), dtls.WithSRTPProtectionProfiles(tt.profile),
				dtls.WithKeyLogWriter(&client))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cconn.Close() })
			if err := cconn.HandshakeContext(context.Background()); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			t.Cleanup(func() { r.c.Close() })
			if wire.hello.Load() == 0 {
				t.Fatal("the client read no server hello")
			}
			state, ok := r.c.ConnectionState()
			if !ok {
				t.Fatal("no connection state")
			}
			want, err := state.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 60)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range []*Handshake{&server, &client} {
				got, err := h.ExportKeyingMaterial("EXTRACTOR-dtls_srtp", nil, 60)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("exported %x, %v; DTLS exports %x", got, err, want)
				}
			}
			sk, err := server.Keys(false)
			if err != nil {
				t.Fatal(err)
			}
			ck, err := client.Keys(true)
			if err != nil {
				t.Fatal(err)
			}
			if uint16(sk.Profile) != uint16(tt.profile) || ck.Profile != sk.Profile {
				t.Errorf("profiles %v and %v, want %v", sk.Profile, ck.Profile, tt.profile)
			}
			if !bytes.Equal(sk.LocalKey, ck.RemoteKey) || !bytes.Equal(sk.LocalSalt, ck.RemoteSalt) ||
				!bytes.Equal(ck.LocalKey, sk.RemoteKey) || bytes.Equal(sk.LocalKey, sk.RemoteKey) {
				t.Errorf("server keys %x/%x, client's %x/%x", sk.LocalKey, sk.RemoteKey, ck.LocalKey, ck.RemoteKey)
			}
		})
	}
}

// Without a server hello, or one without an SRTP profile, there are no
// keys; nor from datagrams that are not a server hello.
func TestKeysNeedTheWholeHandshake(t *testing.T) {
	var h Handshake
	_, _ = h.Write([]byte("CLIENT_RANDOM " + fmt.Sprintf("%064x", 1) + " " + fmt.Sprintf("%096x", 2) + "\n"))
	if _, err := h.Keys(false); err == nil {
		t.Fatal("keys without a server hello")
	}
	for _, b := range [][]byte{nil, {22}, {22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, bytes.Repeat([]byte{22}, 40)} {
		if h.ReadDatagram(b) {
			t.Fatalf("a server hello in %x", b)
		}
	}
	h.ServerHello(handshake.MessageServerHello{})
	if _, err := h.Keys(false); err == nil {
		t.Fatal("keys without an SRTP profile")
	}
}
