package main

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Mechanisms the load tool speaks.
const (
	mechSCRAM256 = "SCRAM-SHA-256"
	mechSCRAM1   = "SCRAM-SHA-1"
	mechPlain    = "PLAIN"
)

// keyCache keeps the client and server keys derived from a password, salt
// and iteration count, as real clients do after their first login: the
// PBKDF2 cost of SCRAM is then paid once per account, not per login, so
// the load tool measures the server and not its own key derivation.
type keyCache struct {
	mu sync.Mutex
	m  map[string]scramKeys
}

type scramKeys struct {
	ClientKey []byte `json:"c"`
	ServerKey []byte `json:"s"`
}

func newKeyCache() *keyCache { return &keyCache{m: map[string]scramKeys{}} }

func cacheKey(mech, user, password string, salt []byte, iter int) string {
	return mech + " " + user + " " + password + " " + base64.StdEncoding.EncodeToString(salt) + " " + strconv.Itoa(iter)
}

func (k *keyCache) get(key string) (scramKeys, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[key]
	return v, ok
}

func (k *keyCache) put(key string, v scramKeys) {
	k.mu.Lock()
	k.m[key] = v
	k.mu.Unlock()
}

func (k *keyCache) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}

// load reads a cache file written by save; a missing file is an empty cache.
func (k *keyCache) load(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stoa-bench: reading the key cache: %w", err)
	}
	m := map[string]scramKeys{}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("stoa-bench: key cache %s: %w", path, err)
	}
	k.mu.Lock()
	for key, v := range m {
		k.m[key] = v
	}
	k.mu.Unlock()
	return nil
}

func (k *keyCache) save(path string) error {
	k.mu.Lock()
	b, err := json.Marshal(k.m)
	k.mu.Unlock()
	if err != nil {
		return fmt.Errorf("stoa-bench: encoding the key cache: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("stoa-bench: writing the key cache: %w", err)
	}
	return nil
}

// scramClient is one SCRAM conversation (RFC 5802, no channel binding).
type scramClient struct {
	mech, user, password string
	h                    func() hash.Hash
	cache                *keyCache
	derived              *bool // set to true when PBKDF2 ran (not cached)

	nonce       string
	clientFirst string // client-first-message-bare
	serverSig   []byte
}

func newSCRAM(mech, user, password string, cache *keyCache, derived *bool) *scramClient {
	h := sha256.New
	if mech == mechSCRAM1 {
		h = sha1.New
	}
	var b [18]byte
	_, _ = rand.Read(b[:])
	return &scramClient{mech: mech, user: user, password: password, h: h, cache: cache, derived: derived,
		nonce: base64.RawStdEncoding.EncodeToString(b[:])}
}

func (s *scramClient) first() []byte {
	s.clientFirst = "n=" + strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user) + ",r=" + s.nonce
	return []byte("n,," + s.clientFirst)
}

// final answers the server-first-message.
func (s *scramClient) final(serverFirst []byte) ([]byte, error) {
	var r, salt64 string
	iter := 0
	for _, f := range strings.Split(string(serverFirst), ",") {
		switch {
		case strings.HasPrefix(f, "r="):
			r = f[2:]
		case strings.HasPrefix(f, "s="):
			salt64 = f[2:]
		case strings.HasPrefix(f, "i="):
			iter, _ = strconv.Atoi(f[2:])
		}
	}
	if !strings.HasPrefix(r, s.nonce) || salt64 == "" || iter <= 0 {
		return nil, fmt.Errorf("stoa-bench: bad SCRAM server-first-message %q", serverFirst)
	}
	salt, err := base64.StdEncoding.DecodeString(salt64)
	if err != nil {
		return nil, fmt.Errorf("stoa-bench: bad SCRAM salt: %w", err)
	}
	key := cacheKey(s.mech, s.user, s.password, salt, iter)
	keys, ok := s.cache.get(key)
	if !ok {
		salted, err := pbkdf2.Key(s.h, s.password, salt, iter, s.h().Size())
		if err != nil {
			return nil, fmt.Errorf("stoa-bench: PBKDF2: %w", err)
		}
		keys = scramKeys{ClientKey: hmacOf(s.h, salted, "Client Key"), ServerKey: hmacOf(s.h, salted, "Server Key")}
		s.cache.put(key, keys)
		if s.derived != nil {
			*s.derived = true
		}
	}
	withoutProof := "c=biws,r=" + r
	authMsg := s.clientFirst + "," + string(serverFirst) + "," + withoutProof
	hh := s.h()
	hh.Write(keys.ClientKey)
	stored := hh.Sum(nil)
	sig := hmacOf(s.h, stored, authMsg)
	proof := make([]byte, len(sig))
	for i := range sig {
		proof[i] = keys.ClientKey[i] ^ sig[i]
	}
	s.serverSig = hmacOf(s.h, keys.ServerKey, authMsg)
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verify checks the server-final-message (v=...).
func (s *scramClient) verify(serverFinal []byte) error {
	v, ok := strings.CutPrefix(string(serverFinal), "v=")
	if !ok {
		return fmt.Errorf("stoa-bench: bad SCRAM server-final-message %q", serverFinal)
	}
	sig, err := base64.StdEncoding.DecodeString(v)
	if err != nil || subtle.ConstantTimeCompare(sig, s.serverSig) != 1 {
		return errors.New("stoa-bench: the server's SCRAM signature does not match")
	}
	return nil
}

func hmacOf(h func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func plainResponse(user, password string) []byte {
	return []byte("\x00" + user + "\x00" + password)
}
