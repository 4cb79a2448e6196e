package web

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"

	altcha "github.com/altcha-org/altcha-lib-go"
)

// The proof of work is ALTCHA's: the server signs a challenge
// SHA-256(salt + n) for a random n up to max_number, and the browser
// finds n by trying every number (static/pow.js). The salt carries the
// time the challenge was issued and its expiry, covered by the signature.
// The server refuses a solution that is wrong, expired, sent sooner than
// min_solve_time after it was issued, or already used (each signature is
// remembered in the store until the challenge expires).

// powChallenge is the JSON the page embeds for the solver.
type powChallenge struct {
	Algorithm string `json:"algorithm"`
	Challenge string `json:"challenge"`
	MaxNumber int64  `json:"maxnumber"`
	Salt      string `json:"salt"`
	Signature string `json:"signature"`
	// MinMillis is how long the page waits before sending the form.
	MinMillis int64 `json:"minms"`
}

// newChallenge issues a challenge and returns its JSON for the page.
func (s *Server) newChallenge() (string, error) {
	now := s.now()
	exp := now.Add(time.Duration(s.cfg.PoW.Expiry))
	c, err := altcha.CreateChallenge(altcha.ChallengeOptions{
		Algorithm: altcha.SHA256,
		MaxNumber: int64(s.cfg.PoW.MaxNumber),
		HMACKey:   s.powKey,
		Expires:   &exp,
		Params:    url.Values{"issued": {strconv.FormatInt(now.UnixMilli(), 10)}},
	})
	if err != nil {
		return "", fmt.Errorf("web: creating a challenge: %w", err)
	}
	b, err := json.Marshal(powChallenge{
		Algorithm: c.Algorithm, Challenge: c.Challenge, MaxNumber: c.MaxNumber, Salt: c.Salt,
		Signature: c.Signature, MinMillis: time.Duration(s.cfg.PoW.MinSolveTime).Milliseconds(),
	})
	if err != nil {
		return "", fmt.Errorf("web: encoding a challenge: %w", err)
	}
	return string(b), nil
}

// powError is a refused proof of work: reason for metrics and logs, key
// of the message people see.
type powError struct{ reason, msg string }

func (e *powError) Error() string { return e.reason }

// checkPoW verifies a submitted solution and marks it used.
func (s *Server) checkPoW(ctx context.Context, payload string) error {
	if payload == "" {
		return &powError{"web_pow_missing", "pow.missing"}
	}
	if len(payload) > 2048 {
		return &powError{"web_pow_invalid", "pow.invalid"}
	}
	raw, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return &powError{"web_pow_invalid", "pow.invalid"}
	}
	var p altcha.Payload
	if err := json.Unmarshal(raw, &p); err != nil || p.Algorithm != string(altcha.SHA256) {
		return &powError{"web_pow_invalid", "pow.invalid"}
	}
	if _, err := hex.DecodeString(p.Signature); err != nil || len(p.Signature) != 64 {
		return &powError{"web_pow_invalid", "pow.invalid"}
	}
	params := altcha.ExtractParams(p)
	issuedMS, err1 := strconv.ParseInt(params.Get("issued"), 10, 64)
	expires, err2 := strconv.ParseInt(params.Get("expires"), 10, 64)
	if err1 != nil || err2 != nil {
		return &powError{"web_pow_invalid", "pow.invalid"}
	}
	// The signature covers the salt, hence issued and expires: checked
	// before they are believed.
	ok, err := altcha.VerifySolutionSafe(p, s.powKey, false)
	if err != nil || !ok {
		return &powError{"web_pow_invalid", "pow.invalid"}
	}
	now := s.now()
	exp := time.Unix(expires, 0)
	if !now.Before(exp) {
		return &powError{"web_pow_expired", "pow.expired"}
	}
	if now.Sub(time.UnixMilli(issuedMS)) < time.Duration(s.cfg.PoW.MinSolveTime) {
		return &powError{"web_pow_too_fast", "pow.tooFast"}
	}
	fresh, err := s.srv.Store().Nonces().Use(ctx, "pow:"+p.Signature, exp)
	if err != nil {
		return fmt.Errorf("web: recording a proof of work: %w", err)
	}
	if !fresh {
		return &powError{"web_pow_replay", "pow.replay"}
	}
	return nil
}
