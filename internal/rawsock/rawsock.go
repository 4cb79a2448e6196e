// Package rawsock gives TCP connections whose reads and writes bypass the
// Go scheduler's system-call bookkeeping.
//
// A read or write on a net.TCPConn enters the kernel through
// syscall.Syscall, which tells the scheduler that the goroutine may block:
// the P is marked as in a system call, sysmon may hand it to another
// thread if the call spans one of its ticks, and the first such call after
// the process was idle wakes sysmon from its deep sleep and sets it
// polling every 20 µs again. For a socket that is non-blocking (every
// socket Go's net package opens is), none of that is needed: the call
// returns at once, with EAGAIN if there is nothing to read or no room to
// write, and the goroutine then waits in the runtime's network poller as
// usual. On a server that handles one short stanza per wake-up, that
// bookkeeping and the sysmon wake-ups it causes were about a third of the
// CPU spent per message (docs/benchmarks.md).
//
// Wrap returns a Conn that does its reads and writes with
// syscall.RawSyscall inside the connection's syscall.RawConn, so
// deadlines, Close and the poller behave exactly as for the wrapped
// connection. On systems other than Linux Wrap returns the connection
// unchanged.
package rawsock
