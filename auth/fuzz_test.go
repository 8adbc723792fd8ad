package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzVerify feeds Verify tickets a stranger could send: any string, and
// any claims signed with the right secret under any header. It never
// panics; what it accepts was signed with HS256 by the secret, has a room,
// a valid role, a subject and an expiry not past; every refusal is one of
// the errors a caller tells apart.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	good, _ := Mint(secret, claims("math", RoleAdmin), now, time.Hour)
	f.Add(good, `{"alg":"HS256","typ":"JWT"}`, `{"room":"math","role":"admin","sub":"u","exp":1800003600}`)
	f.Add("a.b.c", `{"alg":"none"}`, `{"room":"math","role":"admin","sub":"u","exp":1800003600}`)
	f.Add("", `{"alg":"HS512","typ":"JWT"}`, `{"room":"math","role":"recorder","sub":"u","exp":1799999000}`)
	f.Add("...", `{"alg":"HS256"}`, `{"room":"","role":"teacher","sub":"","exp":"soon","nbf":1900000000}`)
	f.Add(good+"x", `{"alg":"HS256","kid":"../../etc/passwd"}`, `{"room":["math"],"role":7,"sub":{},"sources":"video:cam"}`)
	v := NewVerifier(secret, previous)
	enc := base64.RawURLEncoding.EncodeToString
	f.Fuzz(func(t *testing.T, ticket, header, payload string) {
		check := func(what, tk string) {
			c, err := v.Verify(tk, now)
			if err != nil {
				if c != nil {
					t.Fatalf("%s: claims %+v with error %v", what, c, err)
				}
				if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired) {
					t.Fatalf("%s: error %v is neither ErrInvalid nor ErrExpired", what, err)
				}
				return
			}
			if c.Room == "" || !c.Role.Valid() || c.Subject == "" || c.ExpiresAt == nil || !now.Before(c.ExpiresAt.Add(5*time.Second)) {
				t.Fatalf("%s: accepted claims %+v", what, c)
			}
		}
		check("a string", ticket)
		// Signed by the secret under the header given: only HS256 may pass.
		body := enc([]byte(header)) + "." + enc([]byte(payload))
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write([]byte(body))
		signed := body + "." + enc(mac.Sum(nil))
		check("signed claims", signed)
		if c, err := v.Verify(signed, now); err == nil {
			var h struct{ Alg string }
			if json.Unmarshal([]byte(header), &h) != nil || h.Alg != "HS256" {
				t.Fatalf("accepted a ticket with header %q: %+v", header, c)
			}
		}
	})
}
