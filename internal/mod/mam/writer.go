package mam

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"stoa.im/stoa/internal/store"
)

// batchMax bounds the messages written in one transaction.
const batchMax = 1000

// errQueueFull is returned by add when the queue stayed full for the whole
// wait.
var errQueueFull = errors.New("mam: the archive write queue is full")

// writer is the bounded queue between the delivery path and the archive:
// hooks add messages, one goroutine writes them in batches (a group
// commit: each transaction takes everything that queued up while the
// previous one ran, up to batchMax).
type writer struct {
	arc     store.Archive
	quota   int
	max     int
	wait    time.Duration
	log     *slog.Logger
	metrics *metrics

	mu       sync.Mutex
	queue    []store.ArchiveMessage
	enq      uint64        // messages ever queued
	done     uint64        // messages ever written (or skipped: no account)
	progress chan struct{} // closed and replaced after each write
	stopped  bool
	wake     chan struct{}
}

func newWriter(arc store.Archive, quota, max int, wait time.Duration, log *slog.Logger, m *metrics) *writer {
	return &writer{
		arc: arc, quota: quota, max: max, wait: wait, log: log, metrics: m,
		progress: make(chan struct{}), wake: make(chan struct{}, 1),
	}
}

// queued returns the number of messages waiting.
func (w *writer) queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// add queues m. When the queue is full it waits for room (backpressure on
// the caller, the sender's session) for up to w.wait.
func (w *writer) add(ctx context.Context, m store.ArchiveMessage) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		w.mu.Lock()
		if w.stopped {
			w.mu.Unlock()
			// Shutting down: write it directly, the writer is gone.
			return w.write(ctx, []store.ArchiveMessage{m})
		}
		if len(w.queue) < w.max {
			w.queue = append(w.queue, m)
			w.enq++
			w.mu.Unlock()
			w.signal()
			return nil
		}
		ch := w.progress
		w.mu.Unlock()
		if timer == nil {
			w.metrics.waits.Inc()
			timer = time.NewTimer(w.wait)
		}
		select {
		case <-ch:
		case <-timer.C:
			return errQueueFull
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (w *writer) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// sync waits until everything queued before the call is written.
func (w *writer) sync(ctx context.Context) error {
	w.mu.Lock()
	target := w.enq
	w.mu.Unlock()
	w.signal()
	for {
		w.mu.Lock()
		if w.done >= target || w.stopped {
			w.mu.Unlock()
			return nil
		}
		ch := w.progress
		w.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// start runs the writer until ctx ends; then it writes what is left and
// closes the returned channel.
func (w *writer) start(ctx context.Context) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-w.wake:
				w.drain(ctx)
			case <-ctx.Done():
				// Messages taken in are written before the server stops;
				// the store is still open. Later adds write directly.
				w.mu.Lock()
				w.stopped = true
				w.mu.Unlock()
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				w.drain(fctx)
				if n := w.queued(); n > 0 {
					w.log.Error("archive messages could not be written before shutdown", "messages", n)
				}
				cancel()
				return
			}
		}
	}()
	return done
}

// drain writes batches until the queue is empty. A failing write is
// retried with a growing pause: the messages stay queued (and senders
// slow down once it is full) until the database takes them.
func (w *writer) drain(ctx context.Context) {
	pause := 50 * time.Millisecond
	for {
		w.mu.Lock()
		n := min(len(w.queue), batchMax)
		if n == 0 {
			w.mu.Unlock()
			return
		}
		batch := w.queue[:n:n]
		w.mu.Unlock()

		if err := w.write(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return // shutting down: the final drain writes them
			}
			w.metrics.writeErrors.Inc()
			w.log.Error("writing to the archive failed; retrying", "messages", n, "retry_in", pause.String(), "err", err)
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return
			}
			pause = min(2*pause, 5*time.Second)
			continue
		}
		pause = 50 * time.Millisecond
		w.mu.Lock()
		w.queue = w.queue[n:]
		if len(w.queue) == 0 {
			w.queue = nil
		}
		w.done += uint64(n)
		close(w.progress)
		w.progress = make(chan struct{})
		w.mu.Unlock()
	}
}

func (w *writer) write(ctx context.Context, batch []store.ArchiveMessage) error {
	start := time.Now()
	res, err := w.arc.Append(ctx, batch, w.quota)
	if err != nil {
		return err
	}
	w.metrics.writeSeconds.Observe(time.Since(start).Seconds())
	w.metrics.written.Add(float64(res.Stored))
	w.metrics.trimmed.Add(float64(res.Trimmed))
	if res.NoAccount > 0 {
		w.log.Debug("archive messages for deleted accounts skipped", "messages", res.NoAccount)
	}
	return nil
}
