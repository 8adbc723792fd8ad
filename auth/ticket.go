// Package auth mints and verifies join tickets: JWTs (HS256) that the
// portal signs with a secret it shares with vclass-media. The role of a
// peer comes from its ticket, never from what its client says.
package auth

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Role is what a peer may do in a room.
type Role string

// Roles of docs/auth.md.
const (
	RoleAdmin    Role = "admin"    // a teacher
	RoleNormal   Role = "normal"   // a student
	RoleRecorder Role = "recorder" // the hidden recorder
)

// Valid reports whether r is one of the roles.
func (r Role) Valid() bool { return r == RoleAdmin || r == RoleNormal || r == RoleRecorder }

// Claims are what a ticket says. sub (the portal's user id) and exp are
// the registered claims of RFC 7519.
type Claims struct {
	Room    string   `json:"room"`
	Name    string   `json:"name,omitempty"`
	Role    Role     `json:"role"`
	Sources []string `json:"sources,omitempty"`
	jwt.RegisteredClaims
}

// Errors of Verify, checked with errors.Is.
var (
	ErrNoSecret  = errors.New("auth: no ticket secret is configured")
	ErrInvalid   = errors.New("auth: invalid ticket")
	ErrExpired   = errors.New("auth: ticket expired")
	ErrWrongRoom = errors.New("auth: ticket is for another room")
)

// MinSecretLength is the shortest secret accepted: HS256 wants 256 bits.
const MinSecretLength = 32

// Verifier checks tickets against one or more secrets (the current one
// and, during a rotation, the previous one).
type Verifier struct {
	keys [][]byte
}

// NewVerifier makes a verifier; empty secrets are skipped.
func NewVerifier(secrets ...string) *Verifier {
	v := &Verifier{}
	for _, s := range secrets {
		if s != "" {
			v.keys = append(v.keys, []byte(s))
		}
	}
	return v
}

// Verify checks a ticket's signature (HS256 only), expiry and claims.
func (v *Verifier) Verify(ticket string, now time.Time) (*Claims, error) {
	if len(v.keys) == 0 {
		return nil, ErrNoSecret
	}
	var lastErr error
	for _, key := range v.keys {
		claims := &Claims{}
		_, err := jwt.ParseWithClaims(ticket, claims, func(*jwt.Token) (any, error) { return key, nil },
			jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
			jwt.WithExpirationRequired(),
			jwt.WithTimeFunc(func() time.Time { return now }),
			jwt.WithLeeway(5*time.Second),
		)
		switch {
		case err == nil:
			if err := claims.check(); err != nil {
				return nil, err // no half-valid claims for a caller to act on
			}
			return claims, nil
		case errors.Is(err, jwt.ErrTokenExpired):
			return nil, ErrExpired
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			lastErr = err // maybe signed with the other key
		default:
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	return nil, fmt.Errorf("%w: %v", ErrInvalid, lastErr)
}

func (c *Claims) check() error {
	switch {
	case c.Room == "":
		return fmt.Errorf("%w: no room claim", ErrInvalid)
	case !c.Role.Valid():
		return fmt.Errorf("%w: role %q is not admin, normal or recorder", ErrInvalid, c.Role)
	case c.Subject == "":
		return fmt.Errorf("%w: no sub claim", ErrInvalid)
	}
	return nil
}

// ForRoom checks that the ticket admits to room.
func (c *Claims) ForRoom(room string) error {
	if c.Room != room {
		return ErrWrongRoom
	}
	return nil
}

// AllowsSource reports whether the ticket lets its peer publish source;
// a ticket without a sources claim allows what the client declares.
func (c *Claims) AllowsSource(source string) bool {
	return len(c.Sources) == 0 || slices.Contains(c.Sources, source)
}

// Mint signs a ticket valid for ttl from now (for the portal API and tests).
func Mint(secret string, c Claims, now time.Time, ttl time.Duration) (string, error) {
	if len(secret) < MinSecretLength {
		return "", fmt.Errorf("auth: secret shorter than %d characters", MinSecretLength)
	}
	c.IssuedAt = jwt.NewNumericDate(now)
	c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
}
