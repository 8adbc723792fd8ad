package config

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"os"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// Errors of Certificate.Load, inside a *CertificateError; test with errors.Is.
var (
	// ErrCertificatePassword: the password does not open the file.
	ErrCertificatePassword = errors.New("wrong password")
	// ErrNotPKCS12: the file is not PKCS#12 at all (a PEM file, say).
	ErrNotPKCS12 = errors.New("not a PKCS#12 file")
	// ErrCertificateExpired and ErrCertificateNotYetValid: the leaf certificate is outside its
	// validity period, and Certificate.AllowInvalid is false.
	ErrCertificateExpired     = errors.New("the certificate has expired")
	ErrCertificateNotYetValid = errors.New("the certificate is not valid yet")
)

// CertificateError reports a certificate that cannot serve HTTPS. Key is the config key that
// names the file; Err is a file system error or wraps one of the Err… values above.
type CertificateError struct {
	Key string
	Err error
}

// Error reads "certificate Key: Err", e.g. "certificate Service.Kestrel.EndPoints.Https.
// Certificate.Path: wrong password for /Websoft.Recording/certs/recorder.pfx".
func (e *CertificateError) Error() string { return "certificate " + e.Key + ": " + e.Err.Error() }

func (e *CertificateError) Unwrap() error { return e.Err }

// Load reads the PKCS#12 file (as made by openssl pkcs12 -export, OpenSSL 3 defaults or
// -legacy) and returns its key, leaf certificate and chain, ready for tls.Config. The leaf
// is the certificate that matches the key. A leaf outside its validity period at now is an
// error, unless AllowInvalid: then it loads, and warning says what is wrong, for the caller
// to log. Errors are *CertificateError.
func (c Certificate) Load(now time.Time) (cert tls.Certificate, warning string, err error) {
	fail := func(err error) (tls.Certificate, string, error) {
		return tls.Certificate{}, "", &CertificateError{Key: keyCertPath, Err: err}
	}
	if c.Path == "" {
		return fail(errors.New("no file given"))
	}
	data, err := os.ReadFile(c.Path)
	if err != nil {
		return fail(err)
	}
	key, first, rest, err := pkcs12.DecodeChain(data, c.Password)
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword):
		return fail(fmt.Errorf("%w for %s", ErrCertificatePassword, c.Path))
	case err != nil && bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")):
		return fail(fmt.Errorf("%s is %w but PEM; make one with openssl pkcs12 -export", c.Path, ErrNotPKCS12))
	case err != nil && !looksLikePFX(data):
		return fail(fmt.Errorf("%s is %w", c.Path, ErrNotPKCS12))
	case err != nil:
		return fail(fmt.Errorf("%s: %w", c.Path, err))
	}
	cert, err = keyPair(key, append([]*x509.Certificate{first}, rest...))
	if err != nil {
		return fail(fmt.Errorf("%s: %w", c.Path, err))
	}
	if err := checkValidity(cert.Leaf, now); err != nil {
		if !c.AllowInvalid {
			return fail(fmt.Errorf("%s: %w", c.Path, err))
		}
		warning = (&CertificateError{Key: keyCertPath, Err: fmt.Errorf("%s: %w", c.Path, err)}).Error() +
			"; loaded anyway, as AllowInvalid is true"
	}
	return cert, warning, nil
}

// looksLikePFX reports whether data is a DER SEQUENCE that starts with an INTEGER, as a PFX
// does; it tells a damaged or unsupported PKCS#12 file from some other file.
func looksLikePFX(data []byte) bool {
	var pfx struct {
		Version int
		Rest    asn1.RawValue
	}
	_, err := asn1.Unmarshal(data, &pfx)
	return err == nil
}

// keyPair builds the tls.Certificate: the certificate matching key first (go-pkcs12 assumes
// the file lists it first; we do not), then the others in file order.
func keyPair(key any, certs []*x509.Certificate) (tls.Certificate, error) {
	signer, ok := key.(crypto.Signer)
	if !ok {
		return tls.Certificate{}, fmt.Errorf("the private key is a %T, which cannot sign", key)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return tls.Certificate{}, fmt.Errorf("the private key is a %T, which TLS does not use", key)
	}
	leaf := -1
	for i, c := range certs {
		if pub.Equal(c.PublicKey) {
			leaf = i
			break
		}
	}
	if leaf < 0 {
		return tls.Certificate{}, errors.New("no certificate in the file matches its private key")
	}
	out := tls.Certificate{PrivateKey: key, Leaf: certs[leaf], Certificate: [][]byte{certs[leaf].Raw}}
	for i, c := range certs {
		if i != leaf {
			out.Certificate = append(out.Certificate, c.Raw)
		}
	}
	return out, nil
}

// checkValidity reports a leaf outside its validity period at now.
func checkValidity(leaf *x509.Certificate, now time.Time) error {
	const layout = "2006-01-02 15:04:05Z07:00"
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("%w: %s is valid until %s, and it is now %s", ErrCertificateExpired,
			leaf.Subject, leaf.NotAfter.UTC().Format(layout), now.UTC().Format(layout))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("%w: %s is valid from %s, and it is now %s", ErrCertificateNotYetValid,
			leaf.Subject, leaf.NotBefore.UTC().Format(layout), now.UTC().Format(layout))
	}
	return nil
}
