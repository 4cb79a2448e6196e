package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a span of time written in the config file as a string such as
// "30s", "5m", "1h30m" or "1d" (a day is 24 hours). Convert it with
// time.Duration(d). Fields of type time.Duration are decoded the same way.
type Duration time.Duration

// ParseDuration parses a duration in the config syntax: Go's
// time.ParseDuration syntax ("300ms", "1h30m") with an optional leading
// number of days ("1d", "2d12h", "1.5d").
func ParseDuration(s string) (Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, err
	}
	return Duration(d), nil
}

func parseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("%q is not a valid duration (use e.g. \"30s\", \"5m\", \"1h30m\", \"1d\")", s)
	const day = 24 * time.Hour
	body := s
	neg := false
	if body != "" && (body[0] == '+' || body[0] == '-') {
		neg = body[0] == '-'
		body = body[1:]
	}
	var total time.Duration
	// An optional leading "<number>d" part, which time.ParseDuration lacks.
	i := 0
	for i < len(body) && (body[i] >= '0' && body[i] <= '9' || body[i] == '.') {
		i++
	}
	if i > 0 && i < len(body) && body[i] == 'd' {
		if n, err := strconv.ParseInt(body[:i], 10, 64); err == nil {
			if n > math.MaxInt64/int64(day) {
				return 0, bad
			}
			total = time.Duration(n) * day
		} else {
			f, err := strconv.ParseFloat(body[:i], 64)
			if err != nil || f*float64(day) >= math.MaxInt64 {
				return 0, bad
			}
			total = time.Duration(f * float64(day))
		}
		body = body[i+1:]
		if body == "" {
			if neg {
				total = -total
			}
			return total, nil
		}
	}
	if body == "" || body[0] == '+' || body[0] == '-' {
		return 0, bad
	}
	d, err := time.ParseDuration(body)
	if err != nil || d > math.MaxInt64-total {
		return 0, bad
	}
	total += d
	if neg {
		total = -total
	}
	return total, nil
}

// String formats d so that ParseDuration reads it back: whole days as "2d",
// otherwise Go's form without trailing zero units ("1h30m", "5m", "30s").
func (d Duration) String() string { return formatDuration(time.Duration(d)) }

func formatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d != 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	*d = v
	return nil
}

// Size is a number of bytes, written in the config file either as an integer
// (512) or as a string with an optional unit: "512", "10KB" (decimal, 1000),
// "256KiB" (binary, 1024), "1MiB", "2GB". Units are B, KB, MB, GB, TB, KiB,
// MiB, GiB and TiB, in any letter case; a space before the unit is allowed.
type Size int64

// sizeUnit returns the multiplier of a lower-cased size unit.
func sizeUnit(unit string) (float64, bool) {
	switch unit {
	case "", "b":
		return 1, true
	case "kb":
		return 1e3, true
	case "mb":
		return 1e6, true
	case "gb":
		return 1e9, true
	case "tb":
		return 1e12, true
	case "kib":
		return 1 << 10, true
	case "mib":
		return 1 << 20, true
	case "gib":
		return 1 << 30, true
	case "tib":
		return 1 << 40, true
	}
	return 0, false
}

var errSizeSyntax = errors.New("bad size")

// ParseSize parses a size in the config syntax (see Size).
func ParseSize(s string) (Size, error) {
	v, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a valid size (use e.g. \"512\", \"10KB\", \"256KiB\", \"1MiB\")", s)
	}
	return v, nil
}

func parseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, errSizeSyntax
	}
	mult, ok := sizeUnit(unit)
	if !ok {
		return 0, errSizeSyntax
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, errSizeSyntax
		}
		m := int64(mult)
		if n > math.MaxInt64/m {
			return 0, errSizeSyntax
		}
		return Size(n * m), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, errSizeSyntax
	}
	v := math.Round(f * mult)
	if v >= math.MaxInt64 {
		return 0, errSizeSyntax
	}
	return Size(v), nil
}

// String formats s so that ParseSize reads it back, in the unit (binary or
// decimal) that divides it exactly with the smallest number: "256KiB",
// "10KB", "2GB", "1500B".
func (s Size) String() string {
	n, unit := int64(s), "B"
	if s > 0 {
		best := n
		for _, u := range []struct {
			name string
			n    int64
		}{{"KB", 1e3}, {"KiB", 1 << 10}, {"MB", 1e6}, {"MiB", 1 << 20},
			{"GB", 1e9}, {"GiB", 1 << 30}, {"TB", 1e12}, {"TiB", 1 << 40}} {
			if n%u.n == 0 && n/u.n < best {
				best, unit = n/u.n, u.name
			}
		}
		n = best
	}
	return strconv.FormatInt(n, 10) + unit
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	*s = v
	return nil
}
