// Package wire is the message envelope of the signaling protocol
// (docs/protocol.md, protoo's shape), shared by the server and the Go
// client so that the two cannot drift apart.
package wire

import "encoding/json"

// Message is a request, a response or a notification.
type Message struct {
	Request      bool            `json:"request,omitempty"`
	Response     bool            `json:"response,omitempty"`
	Notification bool            `json:"notification,omitempty"`
	ID           uint64          `json:"id,omitempty"`
	Method       string          `json:"method,omitempty"`
	OK           *bool           `json:"ok,omitempty"`
	Data         json.RawMessage `json:"data,omitempty"`
	Error        *Error          `json:"error,omitempty"`
}

// Error is the error of a failed response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Redirect, with code "redirect", is the WebSocket URL of the node the
	// room lives on: join there.
	Redirect string `json:"redirect,omitempty"`
}

// Succeeded reports whether a response says ok.
func (m *Message) Succeeded() bool { return m.OK != nil && *m.OK }
