// Package web serves the browser client of vclass-media: the class page (index.html, app.js,
// style.css, with i18n.js for its strings in English and Russian and devices.js for cameras,
// microphones and speakers) and the JavaScript SDK (vclass.js, with its signaling.js) that
// speaks docs/protocol.md.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
	"strings"
	"time"
)

// files is package-level because go:embed only works on package variables; it is read-only.
//
//go:embed index.html app.js i18n.js devices.js vclass.js signaling.js style.css
var files embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// handler serves the embedded assets; anything else is 404.
type handler struct {
	assets map[string]asset // by URL path, "/" included
}

// Handler returns an http.Handler serving the client: index.html at "/" (and "/index.html"),
// the other files at their names; anything else is 404.
// Responses carry "Cache-Control: no-cache" with an ETag, so a browser revalidates cheaply and
// never runs a stale SDK after an upgrade. Scripts may be imported from other origins (the
// portal loads the SDK as a module from us, which needs CORS).
func Handler() http.Handler {
	h := &handler{assets: make(map[string]asset)}
	entries, err := files.ReadDir(".")
	if err != nil {
		panic("web: embedded files unreadable: " + err.Error()) // impossible: checked at build time
	}
	for _, e := range entries {
		body, err := files.ReadFile(e.Name())
		if err != nil {
			panic("web: embedded file unreadable: " + err.Error())
		}
		sum := sha256.Sum256(body)
		h.assets["/"+e.Name()] = asset{
			body:        body,
			contentType: contentType(e.Name()),
			etag:        `"` + hex.EncodeToString(sum[:8]) + `"`,
		}
	}
	h.assets["/"] = h.assets["/index.html"]
	return h
}

// contentType is fixed here rather than taken from the OS mime table, which may map .js to
// application/javascript or be missing; module scripts need a JavaScript type.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	default:
		return "application/octet-stream"
	}
}

// ContentSecurityPolicy is the page's: its own scripts and styles only (no
// inline code, no eval), media from cameras, signaling to any node of the
// cluster (ws: and wss:, as redirects name other hosts), and no framing by
// other sites.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"media-src 'self' mediastream: blob:; connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"

// securityHeaders go with every file of the page. The deep link carries a
// ticket, so no Referer leaves the page.
var securityHeaders = map[string]string{
	"Content-Security-Policy":    ContentSecurityPolicy,
	"X-Content-Type-Options":     "nosniff",
	"X-Frame-Options":            "SAMEORIGIN",
	"Referrer-Policy":            "no-referrer",
	"Permissions-Policy":         "camera=(self), microphone=(self), display-capture=(self), speaker-selection=(self), geolocation=(), payment=(), usb=()",
	"Cross-Origin-Opener-Policy": "same-origin",
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, ok := h.assets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.contentType)
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("ETag", a.etag)
	for k, v := range securityHeaders {
		hdr.Set(k, v)
	}
	if strings.HasSuffix(r.URL.Path, ".js") {
		hdr.Set("Access-Control-Allow-Origin", "*") // public, credential-free files
	}
	// ServeContent answers HEAD, Range and If-None-Match (304) for us.
	http.ServeContent(w, r, r.URL.Path, time.Time{}, bytes.NewReader(a.body))
}
