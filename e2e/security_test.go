package e2e

import (
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/vclass/vclass/auth"
)

// Every way in, with every bad credential, is refused with the documented
// code, and a refusal says nothing about rooms.
func TestSecurityTable(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	cfg := strings.Replace(loopbackConfig(22540, 22549, ""), `"AllowEmptyTickets": true`,
		`"AllowEmptyTickets": false, "Secret": "`+secret+`", "ApiKey": "`+apiKey+`"`, 1)
	srv := startMedia(t, cfg)
	if code, body := apiCall(t, srv, "POST", "/api/v1/rooms", apiKey, `{"id": "secret-room", "serveMode": "Invite"}`); code != 201 {
		t.Fatalf("create: %d %v", code, body)
	}
	mint := func(key, room string, role auth.Role, ttl time.Duration) string {
		tk, err := auth.Mint(key, auth.Claims{Room: room, Role: role, RegisteredClaims: jwt.RegisteredClaims{Subject: "u-" + string(role)}}, time.Now(), ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	enc := base64.RawURLEncoding.EncodeToString
	algNone := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc([]byte(`{"room":"secret-room","role":"admin","sub":"x","exp":`+strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)+`}`)) + "."

	// The API: every endpoint, no key and a wrong key.
	endpoints := []struct{ method, path string }{
		{"POST", "/api/v1/tickets"}, {"POST", "/api/v1/rooms"}, {"GET", "/api/v1/rooms"},
		{"GET", "/api/v1/rooms/secret-room"}, {"DELETE", "/api/v1/rooms/secret-room"},
		{"DELETE", "/api/v1/rooms/secret-room/peers/p"}, {"DELETE", "/api/v1/rooms/secret-room/peers/p/sources/video:cam"},
		{"POST", "/api/v1/rooms/secret-room/peers/p/sources/video:cam/mute"},
		{"POST", "/api/v1/rooms/secret-room/peers/p/sources/video:cam/unmute"},
	}
	for _, e := range endpoints {
		for _, key := range []string{"", "wrong", secret} { // the ticket secret is not the API key
			code, body := apiCall(t, srv, e.method, e.path, key, `{}`)
			if code != 401 || errorCode(body) != "unauthorized" {
				t.Errorf("%s %s with key %q: %d %v", e.method, e.path, key, code, body)
			}
			if raw := strings.ToLower(stringify(body)); strings.Contains(raw, "secret-room") && !strings.Contains(e.path, "secret-room") {
				t.Errorf("%s %s leaks a room name: %v", e.method, e.path, body)
			}
		}
	}

	// The WebSocket: tickets.
	join := func(ticket string) string {
		return `{"request": true, "id": 1, "method": "join", "data": {"displayName": "x", "ticket": "` + ticket + `"}}`
	}
	for _, tt := range []struct{ name, ticket string }{
		{"no ticket", ""},
		{"expired", mint(secret, "secret-room", auth.RoleAdmin, -time.Minute)},
		{"signed with another key", mint(strings.Repeat("k", 32), "secret-room", auth.RoleAdmin, time.Hour)},
		{"alg none", algNone},
		{"garbage", "a.b.c"},
	} {
		c := dialRaw(t, srv)
		res := c.send(join(tt.ticket))
		if res.OK || res.Error == nil || res.Error.Code != "unauthorized" {
			t.Errorf("%s: %+v", tt.name, res.Error)
		} else if strings.Contains(res.Error.Message, "secret-room") {
			t.Errorf("%s: the refusal names the room: %s", tt.name, res.Error.Message)
		}
	}
	other := dialRaw(t, srv)
	other.expectOK(join(mint(secret, "other-room", auth.RoleAdmin, time.Hour)))
	other.expectError(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "secret-room"}}`, "unauthorized")

	// A client claiming a role in its messages is refused; a student's
	// ticket does not make it a teacher.
	claim := dialRaw(t, srv)
	claim.expectError(`{"request": true, "id": 1, "method": "join", "data": {"displayName": "x", "role": "admin", "ticket": "`+mint(secret, "secret-room", auth.RoleNormal, time.Hour)+`"}}`, "badRequest")
	student := dialRaw(t, srv)
	student.expectOK(join(mint(secret, "secret-room", auth.RoleNormal, time.Hour)))
	student.expectOK(`{"request": true, "id": 2, "method": "joinRoom", "data": {"roomId": "secret-room"}}`)
	student.expectError(`{"request": true, "id": 3, "method": "invite", "data": {"peerId": "x", "sources": ["video:cam"]}}`, "forbidden")
}

func stringify(v map[string]any) string {
	var sb strings.Builder
	for k, x := range v {
		sb.WriteString(k)
		if m, ok := x.(map[string]any); ok {
			sb.WriteString(stringify(m))
		} else if s, ok := x.(string); ok {
			sb.WriteString(s)
		}
	}
	return sb.String()
}
