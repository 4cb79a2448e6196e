package register

import (
	"container/list"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/form"
	"stoa.im/stoa/internal/xmpp/xml"
)

// CAPTCHA challenges for in-band registration (XEP-0158 §4, "Extended
// In-Band Registration"): the registration form carries a hidden
// 'challenge' field and one or more challenge fields; the client answers
// one of them in its submission.
//
//   - SHA-256 hashcash (XEP-0158 §5.1): the field's label is a random
//     number of `bits` bits in hex (2^(bits-1) <= label < 2^bits); the
//     answer is a string that starts with the host's domain (the 'from'
//     field) and whose SHA-256 hash, read as a big-endian number, has its
//     `bits` least significant bits equal to the label. Finding one takes
//     about 2^bits hashes; checking it takes one.
//   - ocr: an image of characters, referenced by a cid: URI in an
//     XEP-0221 media element and served with XEP-0231 (bits of binary):
//     inline in the registration form and on request with an IQ get of
//     <data xmlns='urn:xmpp:bob' cid='...'/> before authentication.
//
// A challenge belongs to the connection it was issued to, is single-use
// for a wrong answer, and, once solved, stays valid on its connection for
// a few attempts (so that choosing a name already taken does not mean
// solving it again) until it expires or an account is created with it.

// Namespaces.
const (
	nsCaptcha = "urn:xmpp:captcha"
	nsMedia   = "urn:xmpp:media-element"
	nsBoB     = "urn:xmpp:bob"
)

// maxSolvedUses is how many registration attempts one solved challenge
// covers.
const maxSolvedUses = 5

// Outcomes of checking a submission; they are Registration.Values
// ["captcha"] values and metric labels.
const (
	captchaSolved  = "solved"
	captchaMissing = "missing"
	captchaWrong   = "wrong"
	captchaExpired = "expired"
)

type challenge struct {
	id      string
	host    string
	conn    *server.ConnInfo
	expires time.Time
	bits    int
	label   uint64 // hashcash target; 0 when not offered
	ocr     string // image text; "" when not offered
	cid     string
	png     []byte
	w, h    int
	solved  bool
	uses    int
	el      *list.Element
}

// captchas holds the challenges waiting for an answer. Safe for
// concurrent use.
type captchas struct {
	now    func() time.Time
	expiry time.Duration
	max    int
	length int

	mu     sync.Mutex
	byID   map[string]*challenge
	byCID  map[string]*challenge
	byConn map[*server.ConnInfo]*challenge
	order  *list.List // *challenge, oldest first
}

func newCaptchas(c CaptchaConfig, now func() time.Time) *captchas {
	return &captchas{
		now: now, expiry: time.Duration(c.Expiry), max: c.MaxPending, length: c.ImageLength,
		byID:   make(map[string]*challenge),
		byCID:  make(map[string]*challenge),
		byConn: make(map[*server.ConnInfo]*challenge),
		order:  list.New(),
	}
}

func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// hashcashLabel returns a random number with exactly bits bits.
func hashcashLabel(bits int) uint64 {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), uint(bits-1)))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n.Uint64() | 1<<(bits-1)
}

// hashcashOK checks a hashcash answer.
func hashcashOK(answer, prefix string, bits int, label uint64) bool {
	if len(answer) > 1024 || !strings.HasPrefix(answer, prefix) || bits <= 0 || bits > 64 {
		return false
	}
	sum := sha256.Sum256([]byte(answer))
	low := binary.BigEndian.Uint64(sum[24:])
	mask := uint64(1)<<bits - 1
	if bits == 64 {
		mask = ^uint64(0)
	}
	return low&mask == label
}

// issue creates a challenge of kind for a connection to host, replacing
// the connection's previous one.
func (c *captchas) issue(host string, conn *server.ConnInfo, kind string, bits int) (*challenge, error) {
	ch := &challenge{id: randomID(), host: host, conn: conn, expires: c.now().Add(c.expiry), bits: bits}
	if kind == CaptchaHashcash || kind == CaptchaBoth {
		ch.label = hashcashLabel(bits)
	}
	if kind == CaptchaImage || kind == CaptchaBoth {
		ch.ocr = randomText(c.length)
		data, w, h, err := renderCaptcha(ch.ocr)
		if err != nil {
			return nil, err
		}
		sum := sha1.Sum(data)
		ch.png, ch.w, ch.h = data, w, h
		ch.cid = "sha1+" + hex.EncodeToString(sum[:]) + "@bob.xmpp.org"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked()
	if old := c.byConn[conn]; old != nil {
		c.removeLocked(old)
	}
	for c.order.Len() >= c.max {
		c.removeLocked(c.order.Front().Value.(*challenge))
	}
	ch.el = c.order.PushBack(ch)
	c.byID[ch.id] = ch
	c.byConn[conn] = ch
	if ch.cid != "" {
		c.byCID[ch.cid] = ch
	}
	return ch, nil
}

func (c *captchas) removeLocked(ch *challenge) {
	if c.byID[ch.id] != ch {
		return
	}
	c.order.Remove(ch.el)
	delete(c.byID, ch.id)
	if c.byConn[ch.conn] == ch {
		delete(c.byConn, ch.conn)
	}
	if ch.cid != "" {
		delete(c.byCID, ch.cid)
	}
}

// sweepLocked drops expired challenges from the front (issue order is
// expiry order).
func (c *captchas) sweepLocked() {
	now := c.now()
	for f := c.order.Front(); f != nil; f = c.order.Front() {
		ch := f.Value.(*challenge)
		if now.Before(ch.expires) {
			return
		}
		c.removeLocked(ch)
	}
}

// pending returns the number of challenges waiting.
func (c *captchas) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked()
	return c.order.Len()
}

// check verifies the CAPTCHA answer in a registration form submitted on
// conn and returns an outcome and the challenge id.
func (c *captchas) check(conn *server.ConnInfo, sub *form.Form) (outcome, id string) {
	if sub == nil {
		return captchaMissing, ""
	}
	id = sub.Value("challenge")
	if id == "" {
		return captchaMissing, ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked()
	ch := c.byID[id]
	if ch == nil || ch.conn != conn {
		return captchaExpired, id
	}
	if ch.solved {
		ch.uses++
		if ch.uses > maxSolvedUses {
			c.removeLocked(ch)
			return captchaExpired, id
		}
		return captchaSolved, id
	}
	hc, ocr := strings.TrimSpace(sub.Value("SHA-256")), sub.Value("ocr")
	switch {
	case ch.label != 0 && hc != "":
		if hashcashOK(hc, ch.host, ch.bits, ch.label) {
			ch.solved, ch.uses = true, 1
			return captchaSolved, id
		}
	case ch.ocr != "" && strings.TrimSpace(ocr) != "":
		got := strings.ToUpper(strings.Join(strings.Fields(ocr), ""))
		if subtle.ConstantTimeCompare([]byte(got), []byte(ch.ocr)) == 1 {
			ch.solved, ch.uses = true, 1
			return captchaSolved, id
		}
	default:
		return captchaMissing, id
	}
	// One try per challenge: a wrong answer needs a new one.
	c.removeLocked(ch)
	return captchaWrong, id
}

// done forgets a challenge once an account was created with it.
func (c *captchas) done(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch := c.byID[id]; ch != nil {
		c.removeLocked(ch)
	}
}

// image returns the PNG of the challenge with content id cid.
func (c *captchas) image(cid string) (data []byte, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked()
	ch := c.byCID[cid]
	if ch == nil {
		return nil, false
	}
	return ch.png, true
}

// formFields adds the challenge to a registration form (XEP-0158 §4).
func (ch *challenge) formFields(f *form.Form, sid string) {
	f.Hidden("challenge", ch.id)
	if sid != "" {
		f.Hidden("sid", sid)
	}
	f.Hidden("from", ch.host)
	f.Hidden("answers", "1")
	if ch.label != 0 {
		f.Add(form.Field{
			Var: "SHA-256", Type: form.TextSingle, Label: strconv.FormatUint(ch.label, 16),
			Desc: fmt.Sprintf("Hashcash: a text starting with %s whose SHA-256 hash ends in the %d bits of the hexadecimal label (XEP-0158). Your client can do this for you.", ch.host, ch.bits),
		})
	}
	if ch.ocr != "" {
		f.Add(form.Field{Var: "ocr", Type: form.TextSingle, Label: "Enter the characters you see in the image",
			Desc: "Letters and digits, not case-sensitive."})
	}
}

// decorate adds what form.Form cannot express to the rendered form: the
// XEP-0221 media element of the image field.
func (ch *challenge) decorate(x *xml.Element) {
	if ch.ocr == "" {
		return
	}
	for _, fl := range x.Elements() {
		if fl.Local == "field" && fl.Attr("var") == "ocr" {
			m := xml.New(nsMedia, "media").SetAttr("width", strconv.Itoa(ch.w)).SetAttr("height", strconv.Itoa(ch.h))
			u := xml.New(nsMedia, "uri").SetAttr("type", "image/png")
			u.Text = "cid:" + ch.cid
			fl.Append(m.Append(u))
		}
	}
}

// bob returns the XEP-0231 data element of the image.
func (ch *challenge) bob() *xml.Element {
	d := xml.New(nsBoB, "data").SetAttr("cid", ch.cid).SetAttr("type", "image/png").SetAttr("max-age", "0")
	d.Text = base64.StdEncoding.EncodeToString(ch.png)
	return d
}
