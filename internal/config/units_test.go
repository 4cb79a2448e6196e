package config

import (
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	good := map[string]time.Duration{
		"0":       0,
		"0s":      0,
		"30s":     30 * time.Second,
		"5m":      5 * time.Minute,
		"1h30m":   90 * time.Minute,
		"300ms":   300 * time.Millisecond,
		"1d":      24 * time.Hour,
		"2d12h":   60 * time.Hour,
		"1.5d":    36 * time.Hour,
		"-1d":     -24 * time.Hour,
		"-1d2h":   -26 * time.Hour,
		"+5s":     5 * time.Second,
		"1d0.5h":  24*time.Hour + 30*time.Minute,
		"100000d": 100000 * 24 * time.Hour,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || time.Duration(got) != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, time.Duration(got), err, want)
		}
	}
	for _, in := range []string{"", "5", "d", "1d-2h", "1d+2h", "5 minutes", "1w", "--1s", "1h1d", "999999999d", "1e400d", ".d", "1d1d"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, time.Duration(got))
		}
	}
}

func TestDurationString(t *testing.T) {
	t.Parallel()
	tests := map[time.Duration]string{
		0:                               "0s",
		30 * time.Second:                "30s",
		5 * time.Minute:                 "5m",
		90 * time.Minute:                "1h30m",
		time.Hour:                       "1h",
		time.Hour + 5*time.Second:       "1h0m5s",
		36 * time.Hour:                  "36h",
		48 * time.Hour:                  "2d",
		-48 * time.Hour:                 "-2d",
		1500 * time.Millisecond:         "1.5s",
		-5 * time.Minute:                "-5m",
		time.Duration(1<<63 - 1):        "2562047h47m16.854775807s",
		24*time.Hour + time.Millisecond: "24h0m0.001s",
	}
	for d, want := range tests {
		got := Duration(d).String()
		if got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
		back, err := ParseDuration(got)
		if err != nil || time.Duration(back) != d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got, time.Duration(back), err, d)
		}
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	good := map[string]Size{
		"0":          0,
		"512":        512,
		"512B":       512,
		"10KB":       10_000,
		"10kb":       10_000,
		"256KiB":     256 << 10,
		"1MiB":       1 << 20,
		"1 MiB":      1 << 20,
		"2GB":        2e9,
		"3GiB":       3 << 30,
		"1TB":        1e12,
		"1TiB":       1 << 40,
		"1.5KiB":     1536,
		" 7 b ":      7,
		"8388607TiB": 8388607 << 40,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "KB", "-1", "1K", "1 potato", "10 MB MB", "8388608TiB", "1e3", "8EiB", "1..5KB", "99999999999999999999"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestSizeString(t *testing.T) {
	t.Parallel()
	tests := map[Size]string{
		0:         "0B",
		1:         "1B",
		1500:      "1500B",
		1000:      "1KB",
		1024:      "1KiB",
		256 << 10: "256KiB",
		10 << 20:  "10MiB",
		2e9:       "2GB",
		1 << 40:   "1TiB",
		3e12:      "3TB",
	}
	for s, want := range tests {
		got := s.String()
		if got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(s), got, want)
		}
		if back, err := ParseSize(got); err != nil || back != s {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", got, back, err, int64(s))
		}
	}
}

func TestTextMarshaling(t *testing.T) {
	t.Parallel()
	var d Duration
	if err := d.UnmarshalText([]byte("1d2h")); err != nil || time.Duration(d) != 26*time.Hour {
		t.Errorf("Duration.UnmarshalText = %v, %v", time.Duration(d), err)
	}
	if b, _ := d.MarshalText(); string(b) != "26h" {
		t.Errorf("Duration.MarshalText = %q", b)
	}
	if err := d.UnmarshalText([]byte("soon")); err == nil {
		t.Error("Duration.UnmarshalText accepted garbage")
	}
	var s Size
	if err := s.UnmarshalText([]byte("4KiB")); err != nil || s != 4096 {
		t.Errorf("Size.UnmarshalText = %d, %v", s, err)
	}
	if b, _ := s.MarshalText(); string(b) != "4KiB" {
		t.Errorf("Size.MarshalText = %q", b)
	}
	if err := s.UnmarshalText([]byte("big")); err == nil {
		t.Error("Size.UnmarshalText accepted garbage")
	}
}
