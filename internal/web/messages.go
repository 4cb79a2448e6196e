package web

import "fmt"

// Every text the web pages show is here, under a key, so that they can be
// translated in one place: add a catalog for a language and choose it in
// catalogFor. Templates write {{t "key" args...}}; Go code calls s.msg.T.
// Refusal texts from registration policies (name taken, throttled, ...)
// come from the server and are shown as they are.

// catalog maps keys to texts (fmt formats with the arguments).
type catalog struct {
	lang string
	m    map[string]string
}

// T returns the text of key with args. A missing key returns the key
// itself, loudly marked, and TestCatalogComplete catches it.
func (c *catalog) T(key string, args ...any) string {
	s, ok := c.m[key]
	if !ok {
		return "[[" + key + "]]"
	}
	if len(args) == 0 {
		return s
	}
	return fmt.Sprintf(s, args...)
}

// catalogFor returns the catalog for an Accept-Language header. Only
// English exists so far.
func catalogFor(string) *catalog { return english }

var english = &catalog{lang: "en", m: map[string]string{
	"nav.skip":  "Skip to the content",
	"footer":    "This chat server runs stoa, an XMPP server.",
	"home.link": "Back to the start page",

	"home.title":      "Chat on %s",
	"home.intro":      "%s is a chat server for XMPP, the open standard for instant messaging: pick any app, and talk with people on any XMPP server.",
	"home.signup":     "Create an account",
	"home.inviteOnly": "New accounts on %s are by invitation only: ask someone with an account here to invite you.",
	"home.closed":     "%s does not take new accounts.",

	"apps.title":   "Get a chat app",
	"apps.for":     "Suggested for %s",
	"apps.others":  "For other devices",
	"apps.invites": "opens invitation links",

	"platform.android": "Android",
	"platform.ios":     "iPhone and iPad",
	"platform.macos":   "Mac",
	"platform.windows": "Windows",
	"platform.linux":   "Linux",

	"signup.title":         "Create your account on %s",
	"signup.invitedBy":     "%s invited you.",
	"signup.invited":       "You were invited to %s.",
	"signup.username":      "Username",
	"signup.usernameHelp":  "Your address will be username@%s. Letters, digits and . - _ work everywhere.",
	"signup.reserved":      "This invitation is for the address %s.",
	"signup.host":          "Server",
	"signup.password":      "Password",
	"signup.passwordHelp":  "At least %d characters. Keep it to yourself: the server cannot tell it to you later.",
	"signup.password2":     "The same password again",
	"signup.submit":        "Create account",
	"signup.errorsTitle":   "The account was not created",
	"signup.inviteOnly":    "New accounts on %s are by invitation only. Ask someone with an account here for an invitation link.",
	"signup.closed":        "%s does not take new accounts.",
	"signup.approval":      "An administrator reviews new accounts: until yours is approved, it can only talk to a few people.",
	"signup.noInviteHere":  "This invitation does not let you create an account here. Open it in a chat app that already has an account.",
	"signup.inviteInvalid": "This invitation cannot be used: it is unknown, has expired or was already used. Ask the person who invited you for a new one.",

	"pow.label":    "Robot check",
	"pow.working":  "Your browser is doing a short computation to show it is not a robot…",
	"pow.done":     "Done: your browser passed the robot check.",
	"pow.sending":  "Sending…",
	"pow.noscript": "One step of this form needs JavaScript: your browser does a short computation to show it is not a robot. Turn JavaScript on for this page, or ask for an invitation link and sign up in a chat app.",
	"pow.missing":  "The robot check did not run. Turn JavaScript on for this page and send the form again.",
	"pow.invalid":  "The robot check failed. Send the form again.",
	"pow.expired":  "The form was open too long. It has been renewed: send it again.",
	"pow.tooFast":  "The form was sent too fast. Wait a few seconds and send it again.",
	"pow.replay":   "This form was already sent once. It has been renewed: send it again.",

	"err.csrf":             "The form expired or came from another site. It has been renewed: send it again.",
	"err.usernameEmpty":    "Choose a username.",
	"err.passwordShort":    "The password needs at least %d characters.",
	"err.passwordLong":     "The password is too long (at most %d characters).",
	"err.passwordMismatch": "The two passwords differ. Type the same password twice.",
	"err.exists":           "The name %s is taken. Choose another one.",
	"err.internal":         "The server could not do this just now; the problem was logged. Try again later.",
	"err.badHost":          "Choose one of the servers in the list.",

	"welcome.title":   "Welcome!",
	"welcome.address": "Your address is %s",
	"welcome.next":    "Open your chat app and log in with this address and your password.",
	"welcome.contact": "%s is already in your contacts.",

	"invite.contactTitle": "%s invited you to chat",
	"invite.accountTitle": "You are invited to %s",
	"invite.contactIntro": "%s (%s) would like to add you as a contact.",
	"invite.accountIntro": "You can create an account on %s, a chat server for XMPP.",
	"invite.accountBy":    "The invitation is from %s.",
	"invite.open":         "Open the invitation in your app",
	"invite.openHelp":     "This works when a chat app that supports invitation links is installed.",
	"invite.signup":       "Create an account on the web",
	"invite.signupHelp":   "No app yet? Create your account here first, then log in with any app.",
	"invite.haveAccount":  "Already have an XMPP address? Open the invitation in your app: it adds %s to your contacts.",
	"invite.expires":      "The invitation is valid until %s.",
	"invite.ignore":       "If you do not know who sent you this, ignore it.",
	"invite.invalidTitle": "This invitation cannot be used",
	"invite.invalid":      "It is unknown, has expired, or was already used. Ask the person who invited you for a new one.",

	"reset.title":        "Set a new password for %s",
	"reset.submit":       "Set the password",
	"reset.doneTitle":    "Password changed",
	"reset.done":         "The password of %s was changed. Log in with the new password.",
	"reset.invalidTitle": "This link cannot be used",
	"reset.invalid":      "It is unknown, has expired, or was already used. Ask an administrator for a new one.",

	"notFound.title": "Page not found",
	"notFound.text":  "There is nothing at this address.",
	"error.title":    "Something went wrong",
}}
