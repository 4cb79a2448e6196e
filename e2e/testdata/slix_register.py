#!/usr/bin/python3
"""slixmpp in-band registration client for the stoa end-to-end tests.

Usage: slix_register.py '{"user": ..., "domain": ..., "password": ...,
                          "new_password": ..., "host": ..., "port": ...,
                          "refused": [...], "timeout": ...}'

With slixmpp's XEP-0077 plugin: connects over STARTTLS, gets the
registration form (XEP-0004) and answers its XEP-0158 SHA-256 hashcash
challenge (solved here: slixmpp has no hashcash code). First submits each
name in "refused" and reports the server's error (condition and text),
then registers "user". slixmpp then logs in with the new account, changes
its password (XEP-0077 section 3.3), and disconnects. A second client logs
in with the new password and cancels the registration (section 3.2).
Every step is printed on stdout as one JSON object per line; the Go test
asserts them. Exits 0 when the scenario completed, 1 otherwise.
"""

import asyncio
import hashlib
import json
import logging
import os
import sys
import time

import slixmpp
from slixmpp.exceptions import IqError


def emit(event, **kw):
    kw["event"] = event
    print(json.dumps(kw), flush=True)


def value(field):
    """A field's value: slixmpp returns a list for some field types."""
    v = field["value"]
    if isinstance(v, list):
        return v[0] if v else ""
    return v


def solve_hashcash(prefix, label_hex):
    """XEP-0158 section 5.1: a string starting with prefix whose SHA-256
    hash has as least significant bits the bits of the label."""
    label = int(label_hex, 16)
    bits = label.bit_length()
    mask = (1 << bits) - 1
    i = 0
    while True:
        s = "%s%d" % (prefix, i)
        if int.from_bytes(hashlib.sha256(s.encode()).digest(), "big") & mask == label:
            return s, i, bits
        i += 1


class Registrar(slixmpp.ClientXMPP):
    """Registers, logs in, changes the password."""

    def __init__(self, cfg):
        super().__init__("%s@%s" % (cfg["user"], cfg["domain"]), cfg["password"])
        self.cfg = cfg
        self.done = asyncio.get_running_loop().create_future()
        self.register_plugin("xep_0004")
        self.register_plugin("xep_0066")
        self.register_plugin("xep_0077")
        # slixmpp 1.8 holds back every stanza but resource binding until
        # the session starts, which blocks its own XEP-0077 plugin's IQs
        # before authentication; let them through until then.
        self._always_send_everything = True
        self.add_event_handler("register", self.on_register)
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_all_auth", lambda _: self.fail("authentication failed"))
        self.add_event_handler("disconnected", self.on_disconnected)

    def fail(self, why):
        emit("error", error=why)
        if not self.done.done():
            self.done.set_result(False)

    def on_disconnected(self, reason):
        if not self.done.done():
            self.fail("disconnected: %s" % (reason,))

    def submission(self, form, username, answer):
        resp = self.Iq()
        resp["type"] = "set"
        sub = resp["register"]["form"]
        sub.set_type("submit")
        sub.add_field(var="FORM_TYPE", value="jabber:iq:register")
        for var in ("challenge", "sid", "answers", "from"):
            if var in form.get_fields():
                sub.add_field(var=var, value=value(form.get_fields()[var]))
        if answer is not None:
            sub.add_field(var="SHA-256", value=answer)
        sub.add_field(var="username", value=username)
        sub.add_field(var="password", value=self.password)
        return resp

    async def on_register(self, iq):
        try:
            form = iq["register"]["form"]
            fields = form.get_fields()
            emit("form", fields=sorted(fields.keys()), title=form["title"],
                 instructions=iq["register"]["instructions"])
            answer = None
            if "SHA-256" in fields:
                label = fields["SHA-256"]["label"]
                prefix = value(fields["from"]) if "from" in fields else self.cfg["domain"]
                t0 = time.monotonic()
                answer, tries, bits = solve_hashcash(prefix, label)
                emit("hashcash", label=label, bits=bits, tries=tries, seconds=round(time.monotonic() - t0, 3))
            for name in self.cfg.get("refused", []):
                try:
                    await self.submission(form, name, answer).send()
                    emit("registered", user=name)
                except IqError as e:
                    emit("refused", user=name, condition=e.iq["error"]["condition"],
                         type=e.iq["error"]["type"], text=e.iq["error"]["text"])
            await self.submission(form, self.cfg["user"], answer).send()
            emit("registered", user=self.cfg["user"])
        except IqError as e:
            emit("refused", user=self.cfg["user"], condition=e.iq["error"]["condition"],
                 type=e.iq["error"]["type"], text=e.iq["error"]["text"])
            self.fail("registration refused")
            self.disconnect()
        except Exception as e:  # noqa: BLE001 - report anything to the Go test
            self.fail("%s: %s" % (type(e).__name__, e))
            self.disconnect()

    async def on_start(self, _):
        self._always_send_everything = False
        emit("session_start", jid=str(self.boundjid))
        try:
            # XEP-0077 section 3.3.
            await self["xep_0077"].change_password(self.cfg["new_password"])
            emit("password_changed")
            self.done.set_result(True)
        except IqError as e:
            emit("password_refused", condition=e.iq["error"]["condition"], text=e.iq["error"]["text"])
            self.fail("password change refused")
        except Exception as e:  # noqa: BLE001
            self.fail("%s: %s" % (type(e).__name__, e))


class Canceller(slixmpp.ClientXMPP):
    """Logs in with the new password and deletes the account."""

    def __init__(self, cfg):
        super().__init__("%s@%s" % (cfg["user"], cfg["domain"]), cfg["new_password"])
        self.cfg = cfg
        self.done = asyncio.get_running_loop().create_future()
        self.register_plugin("xep_0004")
        self.register_plugin("xep_0066")
        self.register_plugin("xep_0077", {"create_account": False})
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_all_auth", lambda _: self.fail("login with the new password failed"))
        self.add_event_handler("disconnected", self.on_disconnected)
        self.removed = False

    def fail(self, why):
        emit("error", error=why)
        if not self.done.done():
            self.done.set_result(False)

    def on_disconnected(self, reason):
        if self.removed:
            emit("disconnected_after_remove", reason=str(reason))
            if not self.done.done():
                self.done.set_result(True)
        elif not self.done.done():
            self.fail("disconnected: %s" % (reason,))

    async def on_start(self, _):
        emit("login_new_password", jid=str(self.boundjid))
        try:
            # XEP-0077 section 3.2: the server answers, then ends the stream.
            await self["xep_0077"].cancel_registration()
            self.removed = True
            emit("removed")
        except IqError as e:
            emit("remove_refused", condition=e.iq["error"]["condition"], text=e.iq["error"]["text"])
            self.fail("cancel refused")
        except Exception as e:  # noqa: BLE001
            self.fail("%s: %s" % (type(e).__name__, e))


async def run(client, cfg):
    client.connect(address=(cfg["host"], int(cfg["port"])), force_starttls=True)
    try:
        ok = await asyncio.wait_for(client.done, cfg.get("timeout", 60))
    except asyncio.TimeoutError:
        emit("error", error="timed out")
        ok = False
    try:
        await asyncio.wait_for(client.disconnect(), 10)
    except asyncio.TimeoutError:
        pass
    return ok


async def main(cfg):
    if not await run(Registrar(cfg), cfg):
        return False
    ok = await run(Canceller(cfg), cfg)
    if ok:
        emit("done")
    return ok


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG if os.environ.get("STOA_E2E_TRACE") == "1" else logging.ERROR, stream=sys.stderr)
    ok = asyncio.run(main(json.loads(sys.argv[1])))
    sys.exit(0 if ok else 1)
