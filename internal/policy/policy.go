// Package policy holds anti-abuse primitives shared by features: keyed rate
// limiters, IP prefixes, failure backoff, denial reasons.
package policy
