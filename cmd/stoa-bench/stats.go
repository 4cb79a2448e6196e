package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// latencies records durations from many goroutines (sharded to avoid one
// hot lock) and summarizes them.
type latencies struct {
	next   atomic.Uint32
	shards [32]struct {
		mu sync.Mutex
		v  []int64
		_  [40]byte // keep shards on separate cache lines
	}
}

func (l *latencies) add(d time.Duration) {
	s := &l.shards[l.next.Add(1)%uint32(len(l.shards))]
	s.mu.Lock()
	s.v = append(s.v, int64(d))
	s.mu.Unlock()
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Count int     `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
}

func (l *latencies) summary() Summary {
	var all []int64
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		all = append(all, s.v...)
		s.mu.Unlock()
	}
	return summarize(all)
}

func (l *latencies) reset() {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		s.v = nil
		s.mu.Unlock()
	}
}

func summarize(v []int64) Summary {
	if len(v) == 0 {
		return Summary{}
	}
	slices.Sort(v)
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	at := func(q float64) float64 {
		i := int(q*float64(len(v))+0.5) - 1
		i = max(0, min(i, len(v)-1))
		return ms(v[i])
	}
	var sum float64
	for _, x := range v {
		sum += float64(x)
	}
	return Summary{Count: len(v), Mean: sum / float64(len(v)) / 1e6, P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(v[len(v)-1])}
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux
// for every architecture Go supports).
const clockTicks = 100

// procSample is a process's CPU time and memory at one moment.
type procSample struct {
	at  time.Time
	cpu time.Duration // user + system, threads included
	rss int64         // bytes
}

// sampleProc reads /proc/PID; pid 0 samples nothing.
func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	if pid == 0 {
		return s, nil
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("stoa-bench: reading the server's CPU time: %w", err)
	}
	// Fields after the command name (which is in parentheses and may hold
	// spaces): state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("stoa-bench: unexpected /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.cpu = time.Duration(ut+st) * time.Second / clockTicks
	s.rss, err = rssOf(pid)
	return s, err
}

func rssOf(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("stoa-bench: reading the server's memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("stoa-bench: no VmRSS in /proc/%d/status", pid)
}

// selfCPU is the load tool's own CPU time (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// meter measures a phase: wall time, the server's CPU and the tool's own.
type meter struct {
	pid      int
	start    procSample
	selfCPU0 time.Duration
}

func startMeter(pid int) *meter {
	s, _ := sampleProc(pid)
	return &meter{pid: pid, start: s, selfCPU0: selfCPU()}
}

// Usage is what a phase cost.
type Usage struct {
	Seconds       float64 `json:"seconds"`
	ServerCPU     float64 `json:"server_cpu_seconds"`
	ServerCores   float64 `json:"server_cores"` // CPU seconds per second
	BenchCPU      float64 `json:"bench_cpu_seconds"`
	BenchCores    float64 `json:"bench_cores"`
	BenchShare    float64 `json:"bench_share"` // of the machine's cores
	ServerRSSEnd  int64   `json:"server_rss_end_bytes"`
	MachineCores  int     `json:"machine_cores"`
	ServerSampled bool    `json:"server_sampled"`
}

func (m *meter) stop() Usage {
	end, err := sampleProc(m.pid)
	u := Usage{Seconds: end.at.Sub(m.start.at).Seconds(), MachineCores: runtime.NumCPU()}
	u.BenchCPU = (selfCPU() - m.selfCPU0).Seconds()
	if u.Seconds > 0 {
		u.BenchCores = u.BenchCPU / u.Seconds
		u.BenchShare = u.BenchCores / float64(u.MachineCores)
	}
	if m.pid != 0 && err == nil {
		u.ServerSampled = true
		u.ServerCPU = (end.cpu - m.start.cpu).Seconds()
		u.ServerRSSEnd = end.rss
		if u.Seconds > 0 {
			u.ServerCores = u.ServerCPU / u.Seconds
		}
	}
	return u
}

// Machine describes where the run happened.
type Machine struct {
	CPU       string  `json:"cpu"`
	Cores     int     `json:"cores"`
	MemoryGiB float64 `json:"memory_gib"`
	Kernel    string  `json:"kernel"`
	Go        string  `json:"go"`
	LoadAvg   string  `json:"load_average_at_start"`
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
				m.MemoryGiB = kb / (1 << 20)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return m
}
