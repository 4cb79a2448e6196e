package policy

import (
	"fmt"
	"testing"
	"time"
)

func BenchmarkBucketAllow(b *testing.B) {
	bk := NewBucket(1e12, 1e12, nil)
	for b.Loop() {
		bk.Allow(1)
	}
}

func BenchmarkKeyedAllow(b *testing.B) {
	k := NewKeyed(1e9, 1e9, 100000, nil)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("user%d@example.org", i)
	}
	i := 0
	for b.Loop() {
		k.Allow(keys[i%len(keys)], 1)
		i++
	}
}

// BenchmarkShapedRead is the cost a ShapedConn adds to one Read of 4 KiB,
// with no limit (exempt connections) and with a limit that never waits.
func BenchmarkShapedRead(b *testing.B) {
	for _, limited := range []bool{false, true} {
		b.Run(fmt.Sprint("limited=", limited), func(b *testing.B) {
			s := NewShapedConn(&endless{})
			if limited {
				s.SetLimit(Read, ByteRate{PerSecond: 1e15, Burst: time.Second}, nil)
			}
			buf := make([]byte, 4096)
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := s.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
