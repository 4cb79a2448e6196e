package sasl

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"
)

// BenchmarkSCRAMSHA256 runs the server side of one SCRAM-SHA-256 login
// (Start, client-first, client-final) against stored keys, as stoa does
// for every SCRAM login. The client's proof is computed inside the loop
// from a cached ClientKey (two HMACs and a hash, what a client that
// remembers its keys does); the client's PBKDF2 runs once, outside.
func BenchmarkSCRAMSHA256(b *testing.B) {
	creds, err := NewCredentials("pencil", DefaultIterations)
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(Config{
		Lookup: func(context.Context, string) (Credentials, error) { return creds, nil },
		Secret: []byte("bench secret"), Domain: "example.com",
	})
	salted, err := pbkdf2.Key(sha256.New, "pencil", creds.SHA256.Salt, creds.SHA256.Iterations, sha256.Size)
	if err != nil {
		b.Fatal(err)
	}
	clientKey := hmacSum(sha256.New, salted, []byte("Client Key"))
	storedKey := hashSum(sha256.New, clientKey)
	offered := []string{SCRAMSHA256}
	ctx := context.Background()
	const clientFirstBare = "n=juliet,r=rOprNGfwEbeRWgbNEkqO"
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		conv, err := srv.Start(ctx, SCRAMSHA256, TLSInfo{}, offered)
		if err != nil {
			b.Fatal(err)
		}
		sf, done, err := conv.Step(ctx, []byte("n,,"+clientFirstBare))
		if err != nil || done {
			b.Fatal(err, done)
		}
		nonce := ""
		for _, f := range strings.Split(string(sf), ",") {
			if v, ok := strings.CutPrefix(f, "r="); ok {
				nonce = v
			}
		}
		withoutProof := "c=biws,r=" + nonce
		authMsg := clientFirstBare + "," + string(sf) + "," + withoutProof
		sig := hmacSum(sha256.New, storedKey, []byte(authMsg))
		proof := make([]byte, len(sig))
		for i := range sig {
			proof[i] = clientKey[i] ^ sig[i]
		}
		_, done, err = conv.Step(ctx, []byte(withoutProof+",p="+base64.StdEncoding.EncodeToString(proof)))
		if err != nil || !done {
			b.Fatal(err, done)
		}
	}
}

// BenchmarkPLAINStoredSCRAM verifies a PLAIN password against stored
// SCRAM keys: the server runs PBKDF2 (4096 iterations) itself, the cost
// stoa bounds with the login worker pool.
func BenchmarkPLAINStoredSCRAM(b *testing.B) {
	creds, err := NewCredentials("pencil", DefaultIterations)
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(Config{
		Lookup: func(context.Context, string) (Credentials, error) { return creds, nil },
		Secret: []byte("bench secret"), Domain: "example.com",
	})
	tlsOn := TLSInfo{State: &tls.ConnectionState{Version: tls.VersionTLS13}}
	offered := []string{Plain}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		conv, err := srv.Start(ctx, Plain, tlsOn, offered)
		if err != nil {
			b.Fatal(err)
		}
		if _, done, err := conv.Step(ctx, []byte("\x00juliet\x00pencil")); err != nil || !done {
			b.Fatal(err, done)
		}
	}
}
