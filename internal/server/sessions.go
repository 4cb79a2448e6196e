package server

import (
	"hash/maphash"
	"sort"
	"sync"
)

const sessionShards = 64

// sessionTable maps bare JIDs to their bound sessions, sharded so that
// binds and lookups on different accounts do not contend.
type sessionTable struct {
	seed   maphash.Seed
	shards [sessionShards]struct {
		mu sync.RWMutex
		m  map[string][]*Session // bare JID -> sessions
	}
}

func newSessionTable() *sessionTable {
	t := &sessionTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string][]*Session)
	}
	return t
}

func (t *sessionTable) shard(bare string) int {
	return int(maphash.String(t.seed, bare) % sessionShards)
}

// bind adds s and returns the session it replaces (same full JID), if any.
func (t *sessionTable) bind(s *Session) (replaced *Session) {
	bare := s.jid.Bare().String()
	sh := &t.shards[t.shard(bare)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.m[bare]
	for i, o := range list {
		if o.jid.Resource() == s.jid.Resource() {
			replaced = o
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	sh.m[bare] = append(list, s)
	return replaced
}

// remove deletes s; it reports whether s was present.
func (t *sessionTable) remove(s *Session) bool {
	bare := s.jid.Bare().String()
	sh := &t.shards[t.shard(bare)]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.m[bare]
	for i, o := range list {
		if o == s {
			list = append(list[:i:i], list[i+1:]...)
			if len(list) == 0 {
				delete(sh.m, bare)
			} else {
				sh.m[bare] = list
			}
			return true
		}
	}
	return false
}

// get returns the session of a full JID.
func (t *sessionTable) get(bare, resource string) *Session {
	sh := &t.shards[t.shard(bare)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	for _, s := range sh.m[bare] {
		if s.jid.Resource() == resource {
			return s
		}
	}
	return nil
}

// all returns the sessions of a bare JID (a copy).
func (t *sessionTable) all(bare string) []*Session {
	sh := &t.shards[t.shard(bare)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	l := sh.m[bare]
	if len(l) == 0 {
		return nil
	}
	return append([]*Session(nil), l...)
}

// count returns the number of sessions of bare.
func (t *sessionTable) count(bare string) int {
	sh := &t.shards[t.shard(bare)]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return len(sh.m[bare])
}

// counts returns the number of online accounts and sessions.
func (t *sessionTable) counts() (users, sessions int) {
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		users += len(sh.m)
		for _, l := range sh.m {
			sessions += len(l)
		}
		sh.mu.RUnlock()
	}
	return
}

// list returns every session, sorted by JID.
func (t *sessionTable) list() []*Session {
	var out []*Session
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.RLock()
		for _, l := range sh.m {
			out = append(out, l...)
		}
		sh.mu.RUnlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].jid.String() < out[j].jid.String() })
	return out
}
