package auth

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	secret   = "0123456789abcdef0123456789abcdef"
	previous = "fedcba9876543210fedcba9876543210"
)

func claims(room string, role Role) Claims {
	return Claims{Room: room, Name: "Ann", Role: role, RegisteredClaims: jwt.RegisteredClaims{Subject: "user-1"}}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	good, _ := Mint(secret, claims("math", RoleAdmin), now, time.Hour)
	old, _ := Mint(previous, claims("math", RoleNormal), now, time.Hour)
	expired, _ := Mint(secret, claims("math", RoleNormal), now.Add(-2*time.Hour), time.Hour)
	other, _ := Mint(strings.Repeat("x", 32), claims("math", RoleAdmin), now, time.Hour)
	noRole, _ := Mint(secret, claims("math", "teacher"), now, time.Hour)
	noRoom, _ := Mint(secret, claims("", RoleNormal), now, time.Hour)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("math", RoleNormal)).SignedString([]byte(secret))
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, claims("math", RoleAdmin)).SignedString([]byte(secret))
	// alg "none": a header and claims with no signature.
	enc := base64.RawURLEncoding.EncodeToString
	none := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc([]byte(`{"room":"math","role":"admin","sub":"u","exp":1900000000}`)) + "."
	// A good ticket whose claims were changed after signing (role raised).
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + enc([]byte(`{"room":"math","role":"admin","sub":"mallory","exp":1900000000}`)) + "." + parts[2]

	tests := []struct {
		name   string
		ticket string
		want   error
		role   Role
	}{
		{"valid", good, nil, RoleAdmin},
		{"signed with the previous secret", old, nil, RoleNormal},
		{"expired", expired, ErrExpired, ""},
		{"unknown secret", other, ErrInvalid, ""},
		{"forged claims", forged, ErrInvalid, ""},
		{"alg none", none, ErrInvalid, ""},
		{"HS512", hs512, ErrInvalid, ""},
		{"no exp", noExp, ErrInvalid, ""},
		{"unknown role", noRole, ErrInvalid, ""},
		{"no room", noRoom, ErrInvalid, ""},
		{"garbage", "not.a.jwt", ErrInvalid, ""},
		{"empty", "", ErrInvalid, ""},
	}
	v := NewVerifier(secret, previous)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := v.Verify(tt.ticket, now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if tt.want == nil && c.Role != tt.role {
				t.Errorf("role %q, want %q", c.Role, tt.role)
			}
		})
	}
	if _, err := NewVerifier().Verify(good, now); !errors.Is(err, ErrNoSecret) {
		t.Errorf("no secret: %v", err)
	}
	c, _ := v.Verify(good, now)
	if c.ForRoom("math") != nil || !errors.Is(c.ForRoom("physics"), ErrWrongRoom) {
		t.Error("ForRoom does not tell rooms apart")
	}
	if _, err := Mint("short", claims("math", RoleAdmin), now, time.Hour); err == nil {
		t.Error("a short secret minted a ticket")
	}
}

func TestAllowsSource(t *testing.T) {
	c := claims("r", RoleNormal)
	if !c.AllowsSource("video:cam") {
		t.Error("no sources claim should allow any declared source")
	}
	c.Sources = []string{"audio:mic"}
	if c.AllowsSource("video:cam") || !c.AllowsSource("audio:mic") {
		t.Error("sources claim not applied")
	}
}
