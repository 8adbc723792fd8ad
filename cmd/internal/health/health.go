// Package health is the services' container health check: the binary
// itself asks its own /healthz, so that images need no shell or curl.
package health

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Check GETs url and reports 0 when it answers 200, else 1 (with the
// reason on w). TLS certificates are not verified: the check runs on the
// container's own loopback, against its own certificate.
func Check(url string, w io.Writer) int {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // our own server on loopback
	}}
	res, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(w, "unhealthy:", err)
		return 1
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		fmt.Fprintln(w, "unhealthy:", res.Status)
		return 1
	}
	return 0
}

// LocalURL turns a listen address (":8011", "0.0.0.0:8443",
// "127.0.0.1:9") into a URL of path on this host.
func LocalURL(scheme, addr, path string) string {
	host, port := "127.0.0.1", addr
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			host, port = addr[:i], addr[i+1:]
			break
		}
	}
	switch host {
	case "", "0.0.0.0", "[::]", "*", "+":
		host = "127.0.0.1"
	}
	return scheme + "://" + host + ":" + port + path
}
