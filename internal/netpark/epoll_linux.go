//go:build linux

package netpark

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

const supported = true

// pollerSys is an epoll instance and an eventfd that stops its loop.
type pollerSys struct {
	epfd, evfd int

	mu      sync.Mutex
	started bool // run was called
	done    bool // the descriptors are closed
}

// tokenStop is the eventfd's token; parked sockets get tokens from 1.
const tokenStop = 0

func (s *pollerSys) open() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("netpark: epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return fmt.Errorf("netpark: eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, tokenStop)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return fmt.Errorf("netpark: epoll_ctl: %w", err)
	}
	s.epfd, s.evfd = epfd, evfd
	return nil
}

// setToken stores token in the event's user data (epoll_data_t, which
// x/sys/unix splits into Fd and Pad).
func setToken(ev *unix.EpollEvent, token uint64) {
	ev.Fd = int32(uint32(token))
	ev.Pad = int32(uint32(token >> 32))
}

func tokenOf(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

func (s *pollerSys) register(fd int, token uint64) error {
	// Level-triggered and one-shot: bytes already waiting fire at once,
	// and one event ends the park.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setToken(&ev, token)
	if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("netpark: epoll_ctl add: %w", err)
	}
	return nil
}

func (s *pollerSys) unregister(fd int) {
	_ = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

func (s *pollerSys) run(ready func(uint64)) error {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return nil // closed before it ran
	}
	s.started = true
	s.mu.Unlock()
	defer s.release()
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(s.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("netpark: epoll_wait: %w", err)
		}
		for i := range n {
			t := tokenOf(&events[i])
			if t == tokenStop {
				return nil
			}
			ready(t)
		}
	}
}

// release closes the descriptors, once.
func (s *pollerSys) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.done = true
		unix.Close(s.epfd)
		unix.Close(s.evfd)
	}
}

// close stops run, or releases the descriptors if run never started. It
// never writes to a descriptor already closed (its number may have been
// given to another file since).
func (s *pollerSys) close() error {
	s.mu.Lock()
	if s.done {
		s.mu.Unlock()
		return nil
	}
	if !s.started {
		s.mu.Unlock()
		s.release()
		return nil
	}
	defer s.mu.Unlock()
	var one = [8]byte{1}
	_, err := unix.Write(s.evfd, one[:])
	return err
}
