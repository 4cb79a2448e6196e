package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"stoa.im/stoa/internal/xmpp/stanza"
	"stoa.im/stoa/internal/xmpp/xml"
)

type iqKey struct {
	target    IQTarget
	typ       string
	ns, local string
}

type iqEntry struct {
	feature string
	h       IQHandler
}

type iqRegistry struct {
	m map[iqKey]iqEntry

	mu      sync.Mutex
	pending map[string]chan *xml.Element // id -> waiter, for IQs the server sent
}

func (r *iqRegistry) add(target IQTarget, typ, ns, local, feature string, h IQHandler) {
	if r.m == nil {
		r.m = make(map[iqKey]iqEntry)
	}
	k := iqKey{target, typ, ns, local}
	if old, dup := r.m[k]; dup {
		panic(fmt.Sprintf("server: IQ %s {%s}%s registered by both %s and %s", typ, ns, local, old.feature, feature))
	}
	r.m[k] = iqEntry{feature: feature, h: h}
}

// handleIQ answers an IQ request addressed to target. It reports false if
// no handler exists.
func (srv *Server) handleIQ(ctx context.Context, target IQTarget, st *Stanza) bool {
	p := st.Payload()
	if p == nil {
		srv.Bounce(ctx, st, stanza.NewError(stanza.BadRequest, "An IQ request must carry exactly one payload element."))
		return true
	}
	e, ok := srv.iq.m[iqKey{target, st.Type, p.Space, p.Local}]
	if !ok {
		return false
	}
	payload, err := e.h(ctx, st)
	if err != nil {
		var se *stanza.Error
		if !errors.As(err, &se) {
			srv.log.Error("IQ handler failed", "feature", e.feature, "ns", p.Space, "from", st.From.String(), "err", err)
			se = stanza.NewError(stanza.InternalServerError, "The server failed to handle this request; the error was logged.")
		}
		srv.Bounce(ctx, st, se)
		return true
	}
	var res *xml.Element
	if payload != nil {
		res = stanza.Result(st.El, payload)
	} else {
		res = stanza.Result(st.El)
	}
	srv.RouteElement(ctx, res)
	return true
}

// SendIQ sends an IQ request from the server (el must have id, from, to,
// type) and waits for the answer until ctx ends.
func (srv *Server) SendIQ(ctx context.Context, el *xml.Element) (*xml.Element, error) {
	id := el.Attr("id")
	ch := make(chan *xml.Element, 1)
	key := el.Attr("to") + "\x00" + id
	srv.iq.mu.Lock()
	if srv.iq.pending == nil {
		srv.iq.pending = make(map[string]chan *xml.Element)
	}
	srv.iq.pending[key] = ch
	srv.iq.mu.Unlock()
	defer func() {
		srv.iq.mu.Lock()
		delete(srv.iq.pending, key)
		srv.iq.mu.Unlock()
	}()
	if err := srv.RouteElement(ctx, el); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// response delivers an IQ result/error addressed to the server to its waiter.
func (srv *Server) response(st *Stanza) bool {
	key := st.From.String() + "\x00" + st.ID
	srv.iq.mu.Lock()
	ch, ok := srv.iq.pending[key]
	srv.iq.mu.Unlock()
	if ok {
		select {
		case ch <- st.El:
		default:
		}
	}
	return ok
}

// NewID returns a fresh id for stanzas the server sends.
func (srv *Server) NewID() string {
	return fmt.Sprintf("stoa-%x-%x", time.Now().UnixNano(), srv.idSeq.Add(1))
}
