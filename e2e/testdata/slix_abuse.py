#!/usr/bin/python3
"""slixmpp client for the stoa abuse-control end-to-end tests.

Usage: slix_abuse.py '{"mode": "block" | "login", "jid": ..., "password": ...,
                       "host": ..., "port": ..., "spammer": ..., "troll": ...,
                       "admin": ..., "timeout": ..., "no_channel_binding": ...}'

mode "block": logs in over STARTTLS, fetches the block list, becomes
available and waits for a message from `spammer`; then blocks it with a
spam report through slixmpp's XEP-0191 and XEP-0377 plugins (the report
on the block, urn:xmpp:reporting:0, as slixmpp sends it), then blocks
`troll` with a XEP-0377 urn:xmpp:reporting:1 report built by hand (in the
item, with a stanza-id and a text); fetches the block list again; waits
for a message from `admin` saying "unblock", unblocks `spammer` and exits.

mode "login": tries to log in and reports the outcome, with the text of a
SASL failure (a suspended account).

Every step is printed on stdout as one JSON object per line; the Go test
asserts them. Exits 0 when the scenario completed, 1 otherwise. The
certificate is checked against SSL_CERT_FILE.
"""

import asyncio
import json
import logging
import os
import sys

import slixmpp
from slixmpp.xmlstream import ET


def emit(event, **kw):
    kw["event"] = event
    print(json.dumps(kw), flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self, cfg):
        super().__init__(cfg["jid"], cfg["password"])
        self.cfg = cfg
        if cfg.get("no_channel_binding"):
            # As in slix_peer.py: without channel-binding data slixmpp
            # sends the gs2 flag "n" (its tls-unique binding is undefined
            # for TLS 1.3).
            plugin = self.plugin["feature_mechanisms"]
            default = plugin.sasl_callback

            def credentials(required, optional):
                creds = default(required, optional)
                creds.pop("channel_binding", None)
                return creds

            plugin.sasl_callback = credentials
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0191")
        self.register_plugin("xep_0377")
        self.done = asyncio.get_running_loop().create_future()
        self.got_spam = asyncio.Event()
        self.got_unblock = asyncio.Event()
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_auth", self.on_failed_auth)
        self.add_event_handler("failed_all_auth", lambda _: self.finish(cfg["mode"] == "login"))
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("blocked", lambda iq: emit("push", op="block", items=sorted(str(j) for j in iq["block"]["items"])))
        self.add_event_handler("unblocked", lambda iq: emit("push", op="unblock", items=sorted(str(j) for j in iq["unblock"]["items"])))

    def finish(self, ok):
        if not self.done.done():
            self.done.set_result(ok)

    def fail(self, why):
        emit("error", error=why)
        self.finish(False)

    def on_failed_auth(self, failure):
        emit("auth_failed", condition=failure["condition"], text=failure["text"])

    def on_disconnected(self, reason):
        if not self.done.done():
            self.fail("disconnected: %s" % (reason,))

    def on_message(self, msg):
        emit("message", frm=str(msg["from"]), type=msg["type"], body=msg["body"])
        if msg["from"].bare == self.cfg.get("spammer"):
            self.got_spam.set()
        if msg["from"].bare == self.cfg.get("admin") and msg["body"] == "unblock":
            self.got_unblock.set()

    async def on_start(self, _):
        emit("session_start", jid=str(self.boundjid))
        if self.cfg["mode"] == "login":
            self.finish(True)
            return
        try:
            await self.scenario()
            self.finish(True)
        except Exception as e:  # noqa: BLE001 - report anything to the Go test
            self.fail("%s: %s" % (type(e).__name__, e))

    async def blocklist(self):
        iq = await self.plugin["xep_0191"].get_blocked()
        items = sorted(str(j) for j in iq["blocklist"]["items"])
        emit("blocklist", items=items)
        return items

    async def scenario(self):
        timeout = self.cfg.get("timeout", 60)
        await self.blocklist()
        self.send_presence()
        emit("ready")
        await asyncio.wait_for(self.got_spam.wait(), timeout)

        # slixmpp's own way: the report on the block (XEP-0377 0.1).
        iq = self.make_iq_set()
        iq["block"]["items"] = [self.cfg["spammer"]]
        iq["block"]["report"]["spam"] = True
        iq["block"]["report"]["text"] = "Unsolicited advertising"
        await iq.send(timeout=timeout)
        emit("blocked", jid=self.cfg["spammer"])

        # XEP-0377 0.4: the report in the item, with a stanza-id.
        iq = self.make_iq_set()
        iq["block"]["items"] = [self.cfg["troll"]]
        item = iq["block"].xml.find("{urn:xmpp:blocking}item")
        report = ET.SubElement(item, "{urn:xmpp:reporting:1}report", reason="urn:xmpp:reporting:abuse")
        ET.SubElement(report, "{urn:xmpp:sid:0}stanza-id", by=self.boundjid.bare, id="sid-4711")
        text = ET.SubElement(report, "{urn:xmpp:reporting:1}text")
        text.text = "Insults in every message"
        await iq.send(timeout=timeout)
        emit("blocked", jid=self.cfg["troll"])
        await self.blocklist()

        await asyncio.wait_for(self.got_unblock.wait(), timeout)
        await self.plugin["xep_0191"].unblock([self.cfg["spammer"]], timeout=timeout)
        emit("unblocked", jid=self.cfg["spammer"])
        await self.blocklist()


async def main(cfg):
    xmpp = Client(cfg)
    xmpp.connect(address=(cfg["host"], int(cfg["port"])), force_starttls=True)
    try:
        ok = await asyncio.wait_for(xmpp.done, cfg.get("timeout", 60))
    except asyncio.TimeoutError:
        emit("error", error="timed out")
        ok = False
    try:
        await asyncio.wait_for(xmpp.disconnect(), 10)
    except asyncio.TimeoutError:
        pass
    emit("end", ok=ok)
    return ok


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG if os.environ.get("STOA_E2E_TRACE") == "1" else logging.ERROR, stream=sys.stderr)
    ok = asyncio.run(main(json.loads(sys.argv[1])))
    sys.exit(0 if ok else 1)
