package readcache

import (
	"fmt"
	"sync"
	"testing"
)

func TestGetFill(t *testing.T) {
	c := New[int](10)
	if _, ok, _ := c.Get("a"); ok {
		t.Fatal("empty cache has a")
	}
	_, _, tk := c.Get("a")
	c.Fill("a", 1, tk)
	if v, ok, _ := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get a = %d, %v after Fill", v, ok)
	}
}

// A read that started before a write does not install its value.
func TestForgetBeatsFillInFlight(t *testing.T) {
	c := New[string](10)
	_, _, tk := c.Get("alice") // the reader misses and reads "old" from the store
	c.Forget("alice")          // a writer stores "new" and forgets
	c.Fill("alice", "old", tk) // the reader installs: refused
	if v, ok, _ := c.Get("alice"); ok {
		t.Fatalf("stale value %q installed", v)
	}
	// A Forget of another key counts too (one generation per cache).
	_, _, tk = c.Get("alice")
	c.Forget("bob")
	c.Fill("alice", "x", tk)
	if _, ok, _ := c.Get("alice"); ok {
		t.Fatal("installed across a Forget")
	}
	// The next read installs.
	_, _, tk = c.Get("alice")
	c.Fill("alice", "new", tk)
	if v, ok, _ := c.Get("alice"); !ok || v != "new" {
		t.Fatalf("Get = %q, %v", v, ok)
	}
	c.Forget("alice")
	if _, ok, _ := c.Get("alice"); ok {
		t.Fatal("Forget left the value")
	}
}

func TestBounded(t *testing.T) {
	c := New[int](5)
	for i := range 100 {
		k := fmt.Sprint(i)
		_, _, tk := c.Get(k)
		c.Fill(k, i, tk)
		if c.Len() > 5 {
			t.Fatalf("%d keys cached, max 5", c.Len())
		}
	}
	// Refilling a cached key drops nothing.
	_, _, tk := c.Get("99")
	c.Fill("99", 99, tk)
	if v, ok, _ := c.Get("99"); !ok || v != 99 || c.Len() != 5 {
		t.Fatalf("Get 99 = %d, %v; %d cached", v, ok, c.Len())
	}
}

func TestConcurrent(t *testing.T) {
	c := New[int](50)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				k := fmt.Sprint((g + i) % 80)
				if _, ok, tk := c.Get(k); !ok {
					c.Fill(k, i, tk)
				}
				if i%7 == 0 {
					c.Forget(k)
				}
			}
		})
	}
	wg.Wait()
	if c.Len() > 50 {
		t.Fatalf("%d cached", c.Len())
	}
}
