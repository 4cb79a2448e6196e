package c2s

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"stoa.im/stoa/internal/server"
	sxml "stoa.im/stoa/internal/xmpp/xml"
)

// discardConn is a net.Conn that swallows writes.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error)      { return len(p), nil }
func (discardConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (discardConn) Close() error                     { return nil }
func (discardConn) SetDeadline(time.Time) error      { return nil }
func (discardConn) SetReadDeadline(time.Time) error  { return nil }
func (discardConn) SetWriteDeadline(time.Time) error { return nil }
func (discardConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (discardConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }

// BenchmarkLinkSend measures what stream management adds to queueing a
// chat message for a client: numbering it, keeping it until the client
// acknowledges (here every 5 stanzas, as request_every asks), and the
// <r/> requests.
//
//	go test -run '^$' -bench BenchmarkLinkSend -benchmem ./internal/c2s
func BenchmarkLinkSend(b *testing.B) {
	srv, err := server.New(server.Options{Hosts: []string{"localhost"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	msg := parseEl(b, `<message from='bob@localhost/pc' to='alice@localhost/phone' type='chat' id='m1'><body>Hello, how are you doing today?</body></message>`)
	for _, sm := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "sm"}[sm], func(b *testing.B) {
			cfg := Defaults
			cfg.MaxQueue = 1 << 40 // the writer may lag: measure queueing, not overflow
			svc := &Service{srv: srv, cfg: cfg, log: slog.New(slog.DiscardHandler), sm: newSMMetrics(prometheus.NewRegistry())}
			raw := discardConn{}
			c := &conn{svc: svc, raw: raw, nc: raw, log: svc.log, done: make(chan struct{})}
			l := newLink(svc, c)
			c.link = l
			if sm {
				l.sm = &smState{r: sxml.New(nsSM, "r")}
				c.sm = l.sm
			}
			b.ReportAllocs()
			for i := range b.N {
				if err := l.Send(msg); err != nil {
					b.Fatal(err)
				}
				if sm && i%5 == 4 {
					l.mu.Lock()
					l.sm.ack(l.sm.sent)
					l.mu.Unlock()
				}
			}
			b.StopTimer()
			l.mu.Lock()
			if l.sm != nil && l.sm.reqTimer != nil {
				l.sm.reqTimer.Stop()
			}
			l.mu.Unlock()
			svc.wg.Wait()
		})
	}
}
