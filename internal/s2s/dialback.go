package s2s

import (
	"crypto/subtle"

	"stoa.im/stoa/internal/xmpp/xml"
)

// verifyKey names a dialback key we asked an authoritative server about:
// the local (receiving) domain, the remote (originating) domain, and the
// id of the incoming stream the key came on.
type verifyKey struct{ local, remote, id string }

func hmacEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// sendVerify sends a db:verify to the authoritative server of p.remote on
// the outgoing connection of p (opened if needed).
func (svc *Service) sendVerify(p pair, b []byte) error {
	for range 3 {
		svc.mu.Lock()
		if svc.closing || svc.ctx == nil {
			svc.mu.Unlock()
			return errClosed
		}
		oc := svc.out[p]
		if oc == nil {
			svc.newOut(p, nil, []qitem{{b: b}})
			svc.mu.Unlock()
			return nil
		}
		svc.mu.Unlock()
		if err := oc.sendVerify(b); err == nil {
			return nil
		}
		svc.retireOut(oc)
	}
	return errClosed
}

// verifyAnswered takes a db:verify answer that arrived on the outgoing
// stream of p.
func (svc *Service) verifyAnswered(p pair, el *xml.Element) {
	if el.Attr("from") != p.remote || el.Attr("to") != p.local {
		return
	}
	typ := el.Attr("type")
	if typ != "valid" && typ != "invalid" {
		typ = "error"
	}
	svc.verifyDone(verifyKey{local: p.local, remote: p.remote, id: el.Attr("id")}, typ)
}

// verifyDone tells the waiting incoming stream the answer.
func (svc *Service) verifyDone(k verifyKey, typ string) {
	svc.mu.Lock()
	ic := svc.verifies[k]
	delete(svc.verifies, k)
	svc.mu.Unlock()
	if ic != nil {
		ic.dialbackVerified(k, typ)
	}
}

// failVerifies answers every verification waiting on p with an error
// (its outgoing connection failed or closed).
func (svc *Service) failVerifies(p pair) {
	svc.mu.Lock()
	var keys []verifyKey
	for k := range svc.verifies {
		if k.local == p.local && k.remote == p.remote {
			keys = append(keys, k)
		}
	}
	svc.mu.Unlock()
	for _, k := range keys {
		svc.verifyDone(k, "error")
	}
}
