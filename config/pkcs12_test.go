package config

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The certificates here are made by the openssl binary, as the deployment's script makes
// recorder.pfx, so that the files are what OpenSSL 3 really writes.

// opensslBin returns the openssl binary. Without one the test is skipped, except in CI,
// where the test script installs it.
func opensslBin(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is not installed; CI must install it")
		}
		t.Skip("openssl is not installed")
	}
	return bin
}

// openssl runs the binary in dir and returns its error with its output.
func openssl(bin, dir string, args ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return errors.New("openssl " + strings.Join(args, " ") + ": " + err.Error() + "\n" + string(out))
	}
	return nil
}

// selfSigned makes c.pem and k.pem in dir: a self-signed certificate for wt-recorder.local,
// valid from now for days days. newkey is openssl req's -newkey argument.
func selfSigned(t *testing.T, bin, dir, newkey, days string, extra ...string) {
	t.Helper()
	args := append([]string{"req", "-x509", "-newkey", newkey, "-nodes", "-keyout", "k.pem", "-out", "c.pem",
		"-days", days, "-subj", "/CN=wt-recorder.local"}, extra...)
	if err := openssl(bin, dir, args...); err != nil {
		t.Fatal(err)
	}
}

// exportPFX writes name from c.pem and k.pem in dir with the password recpass.
func exportPFX(bin, dir, name string, extra ...string) (string, error) {
	args := append([]string{"pkcs12", "-export", "-in", "c.pem", "-inkey", "k.pem", "-out", name, "-passout", "pass:recpass"}, extra...)
	return filepath.Join(dir, name), openssl(bin, dir, args...)
}

func TestCertificateLoad(t *testing.T) {
	bin := opensslBin(t)
	tests := []struct {
		name    string
		newkey  string
		keyArgs []string
		export  []string
		key     func(any) bool
	}{
		{"RSA, OpenSSL 3 defaults", "rsa:2048", nil, nil, isRSA},
		{"EC P-256", "ec", []string{"-pkeyopt", "ec_paramgen_curve:P-256"}, nil, isECDSA},
		{"RSA, -legacy (RC2-40, SHA-1 MAC)", "rsa:2048", nil, []string{"-legacy"}, isRSA},
		{"EC, 3DES", "ec", []string{"-pkeyopt", "ec_paramgen_curve:P-384"},
			[]string{"-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"}, isECDSA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			selfSigned(t, bin, dir, tt.newkey, "2", tt.keyArgs...)
			path, err := exportPFX(bin, dir, "r.pfx", tt.export...)
			if err != nil {
				if len(tt.export) > 0 {
					t.Skipf("this openssl cannot write the file: %v", err)
				}
				t.Fatal(err)
			}
			cert, warning, err := Certificate{Path: path, Password: "recpass"}.Load(time.Now())
			if err != nil || warning != "" {
				t.Fatalf("Load: %v (warning %q)", err, warning)
			}
			if cert.Leaf == nil || cert.Leaf.Subject.CommonName != "wt-recorder.local" || len(cert.Certificate) != 1 {
				t.Errorf("Leaf %v, %d certificates", cert.Leaf, len(cert.Certificate))
			}
			if !tt.key(cert.PrivateKey) {
				t.Errorf("private key %T", cert.PrivateKey)
			}
		})
	}
}

func isRSA(k any) bool   { _, ok := k.(*rsa.PrivateKey); return ok }
func isECDSA(k any) bool { _, ok := k.(*ecdsa.PrivateKey); return ok }

// A file with a CA certificate gives the chain, leaf first.
func TestCertificateLoadChain(t *testing.T) {
	bin := opensslBin(t)
	dir := t.TempDir()
	steps := [][]string{
		{"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca-k.pem", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Test CA"},
		{"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "k.pem", "-out", "leaf.csr", "-subj", "/CN=wt-recorder.local"},
		{"x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca-k.pem", "-CAcreateserial", "-out", "c.pem", "-days", "2"},
	}
	for _, args := range steps {
		if err := openssl(bin, dir, args...); err != nil {
			t.Fatal(err)
		}
	}
	path, err := exportPFX(bin, dir, "r.pfx", "-certfile", "ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := Certificate{Path: path, Password: "recpass"}.Load(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Certificate) != 2 || cert.Leaf.Subject.CommonName != "wt-recorder.local" {
		t.Fatalf("%d certificates, leaf %v", len(cert.Certificate), cert.Leaf.Subject)
	}
	if ca, err := x509.ParseCertificate(cert.Certificate[1]); err != nil || ca.Subject.CommonName != "Test CA" {
		t.Errorf("second certificate %v, %v", ca, err)
	}
}

func TestCertificateLoadErrors(t *testing.T) {
	bin := opensslBin(t)
	dir := t.TempDir()
	selfSigned(t, bin, dir, "ec", "2", "-pkeyopt", "ec_paramgen_curve:P-256")
	pfx, err := exportPFX(bin, dir, "r.pfx")
	if err != nil {
		t.Fatal(err)
	}
	if err := openssl(bin, dir, "x509", "-in", "c.pem", "-outform", "DER", "-out", "c.der"); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.pfx")
	if err := os.WriteFile(garbage, []byte("this is not a certificate\x00\x01\x02"), 0o600); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.pfx")
	data, _ := os.ReadFile(pfx)
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "absent", "recorder.pfx")
	const prefix = "certificate Service.Kestrel.EndPoints.Https.Certificate.Path: "
	tests := []struct {
		name     string
		path     string
		password string
		is       error
		want     string // the whole message, or its start when it ends with "…"
	}{
		{"missing file", missing, "recpass", fs.ErrNotExist, prefix + "open " + missing + ": no such file or directory"},
		{"wrong password", pfx, "wrong", ErrCertificatePassword, prefix + "wrong password for " + pfx},
		{"empty password", pfx, "", ErrCertificatePassword, prefix + "wrong password for " + pfx},
		{"garbage", garbage, "recpass", ErrNotPKCS12, prefix + garbage + " is not a PKCS#12 file"},
		{"a PEM certificate", filepath.Join(dir, "c.pem"), "recpass", ErrNotPKCS12,
			prefix + filepath.Join(dir, "c.pem") + " is not a PKCS#12 file but PEM; make one with openssl pkcs12 -export"},
		{"a DER certificate", filepath.Join(dir, "c.der"), "recpass", ErrNotPKCS12, prefix + filepath.Join(dir, "c.der") + " is not a PKCS#12 file"},
		{"truncated", truncated, "recpass", ErrNotPKCS12, prefix + truncated + " is not a PKCS#12 file"},
		{"no path", "", "recpass", nil, prefix + "no file given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warning, err := Certificate{Path: tt.path, Password: tt.password}.Load(time.Now())
			var ce *CertificateError
			if !errors.As(err, &ce) || ce.Key != keyCertPath {
				t.Fatalf("err = %v (%T), want a *CertificateError", err, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tt.is)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got %s\nwant %s", err, tt.want)
			}
			if warning != "" {
				t.Errorf("warning %q with an error", warning)
			}
		})
	}
}

func TestCertificateValidity(t *testing.T) {
	bin := opensslBin(t)
	dir := t.TempDir()
	selfSigned(t, bin, dir, "ec", "2", "-pkeyopt", "ec_paramgen_curve:P-256")
	pfx, err := exportPFX(bin, dir, "r.pfx")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		now  time.Time
		is   error
		text string
	}{
		{"expired", time.Now().Add(72 * time.Hour), ErrCertificateExpired, "the certificate has expired: CN=wt-recorder.local is valid until "},
		{"not yet valid", time.Now().Add(-time.Hour), ErrCertificateNotYetValid, "the certificate is not valid yet: CN=wt-recorder.local is valid from "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Certificate{Path: pfx, Password: "recpass"}.Load(tt.now)
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), pfx+": "+tt.text) {
				t.Errorf("AllowInvalid false: err = %v, want %v", err, tt.is)
			}
			cert, warning, err := Certificate{Path: pfx, Password: "recpass", AllowInvalid: true}.Load(tt.now)
			if err != nil || cert.Leaf == nil {
				t.Fatalf("AllowInvalid true: %v", err)
			}
			if !strings.Contains(warning, tt.text) || !strings.HasSuffix(warning, "; loaded anyway, as AllowInvalid is true") {
				t.Errorf("warning %q", warning)
			}
		})
	}
}

// The loaded certificate serves HTTPS to a client that trusts c.pem.
func TestCertificateServesTLS(t *testing.T) {
	bin := opensslBin(t)
	dir := t.TempDir()
	selfSigned(t, bin, dir, "rsa:2048", "2", "-addext", "subjectAltName=DNS:wt-recorder.local")
	pfx, err := exportPFX(bin, dir, "r.pfx")
	if err != nil {
		t.Fatal(err)
	}
	cert, _, err := Certificate{Path: pfx, Password: "recpass"}.Load(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "recorder")
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	defer srv.Close()

	pemData, err := os.ReadFile(filepath.Join(dir, "c.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemData) {
		t.Fatal("c.pem has no certificate")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "wt-recorder.local", MinVersion: tls.VersionTLS12},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET over TLS: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "recorder" {
		t.Errorf("status %d body %q", resp.StatusCode, body)
	}
	if peer := resp.TLS.PeerCertificates; len(peer) != 1 || !peer[0].Equal(cert.Leaf) {
		t.Errorf("the server presented %d certificates, not the loaded one", len(peer))
	}
}
