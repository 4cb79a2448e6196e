package sasl

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"slices"
	"testing"
)

var conditions = []string{Aborted, AccountDisabled, CredentialsExpired, EncryptionRequired, IncorrectEncoding,
	InvalidAuthzid, InvalidMechanism, MalformedRequest, MechanismTooWeak, NotAuthorized, TemporaryAuthFailure}

// FuzzStep feeds two client messages to a conversation. Placeholders let the
// fuzzer reach the later checks: in the second message, NONCE becomes the
// server nonce, CBIND the expected base64 channel-binding value, and a
// trailing ",p=PROOF" the correct proof for password "pencil".
func FuzzStep(f *testing.F) {
	info := dialTLS(f, tls.VersionTLS13, certP256).info
	mechs := Mechanisms(info, true)
	// One iteration keeps the fuzzer fast; the code path is the same.
	salt := []byte("0123456789abcdef")
	keys1, _ := deriveKeys(sha1.New, "pencil", salt, 1)
	keys256, _ := deriveKeys(sha256.New, "pencil", salt, 1)
	creds := Credentials{SHA1: keys1, SHA256: keys256}
	srv := NewServer(Config{
		Lookup: func(ctx context.Context, user string) (Credentials, error) {
			if user == "juliet" {
				return creds, nil
			}
			return Credentials{}, ErrUnknownUser
		},
		Secret:     []byte("fuzz"),
		Iterations: 1,
		Domain:     "example.com",
	})

	for i, m := range mechs {
		switch m {
		case Plain:
			f.Add(uint8(i), []byte("\x00juliet\x00pencil"), []byte(nil))
			f.Add(uint8(i), []byte("juliet@example.com\x00Juliet\x00pencil"), []byte(nil))
		case SCRAMSHA1Plus, SCRAMSHA256Plus:
			f.Add(uint8(i), []byte("p=tls-exporter,,n=juliet,r=abc"), []byte("c=CBIND,r=NONCE,p=PROOF"))
			f.Add(uint8(i), []byte("p=tls-server-end-point,a=juliet@example.com,n=juliet,r=abc"), []byte("c=CBIND,r=NONCE,x=y,p=PROOF"))
		default:
			f.Add(uint8(i), []byte("n,,n=juliet,r=abc"), []byte("c=biws,r=NONCE,p=PROOF"))
			f.Add(uint8(i), []byte("y,,n=romeo,r=abc,e=f"), []byte("c=eSws,r=NONCE,p=AAAA"))
		}
	}

	f.Fuzz(func(t *testing.T, mi uint8, first, second []byte) {
		ctx := context.Background()
		mech := mechs[int(mi)%len(mechs)]
		c, err := srv.Start(ctx, mech, info, mechs)
		if err != nil {
			t.Fatalf("Start(%s): %v", mech, err)
		}
		check := func(out []byte, done bool, err error) {
			t.Helper()
			if err == nil {
				return
			}
			var fl *Failure
			if !errors.As(err, &fl) || !slices.Contains(conditions, fl.Condition) {
				t.Fatalf("error %v is not a *Failure with a defined condition", err)
			}
			if out != nil || done {
				t.Fatalf("failure with output %q, done %v", out, done)
			}
		}
		out, done, err := c.Step(ctx, first)
		check(out, done, err)
		if err != nil || len(first) == 0 {
			return
		}
		if done {
			if mech != Plain || c.Username() != "juliet" {
				t.Fatalf("%s done after one message as %q", mech, c.Username())
			}
			return
		}
		serverFirst := string(out)
		nonce, ok := attr(serverFirst, "r")
		if !ok {
			t.Fatalf("server-first without nonce: %q", serverFirst)
		}
		msg := bytes.ReplaceAll(second, []byte("NONCE"), []byte(nonce))
		msg = bytes.ReplaceAll(msg, []byte("CBIND"), []byte(base64.StdEncoding.EncodeToString(c.cbInput)))
		h, k := sha256.New, keys256
		if c.sha1 {
			h, k = sha1.New, keys1
		}
		var authMessage string
		if withoutProof, ok := bytes.CutSuffix(msg, []byte(",p=PROOF")); ok {
			authMessage = c.clientFirst + "," + serverFirst + "," + string(withoutProof)
			salted, _ := pbkdf2.Key(h, "pencil", salt, 1, h().Size())
			clientKey := hmacSum(h, salted, []byte("Client Key"))
			proof := make([]byte, len(clientKey))
			subtle.XORBytes(proof, clientKey, hmacSum(h, k.StoredKey, []byte(authMessage)))
			msg = append(withoutProof, []byte(",p="+base64.StdEncoding.EncodeToString(proof))...)
		}
		out, done, err = c.Step(ctx, msg)
		check(out, done, err)
		if done {
			if c.Username() != "juliet" {
				t.Fatalf("success as %q", c.Username())
			}
			if !bytes.HasPrefix(out, []byte("v=")) {
				t.Fatalf("server-final %q", out)
			}
			if authMessage == "" {
				t.Fatalf("success without a correct proof: %q", msg)
			}
			want := "v=" + base64.StdEncoding.EncodeToString(hmacSum(h, k.ServerKey, []byte(authMessage)))
			if string(out) != want {
				t.Fatalf("server-final %q, want %q", out, want)
			}
		}
		if _, _, err := c.Step(ctx, msg); err == nil {
			t.Fatalf("conversation continued after it ended")
		}
	})
}
