#!/usr/bin/python3
"""slixmpp client for the stoa end-to-end tests.

Usage: slix_peer.py '{"jid": ..., "password": ..., "host": ..., "port": ...,
                      "peer": ..., "timeout": ..., "mechanism": ...,
                      "no_channel_binding": ...}'

"mechanism" (optional) is the only SASL mechanism slixmpp may use;
"no_channel_binding" keeps slixmpp from using TLS channel-binding data.

Logs in over STARTTLS, fetches the roster, becomes
available, adds `peer` to the roster and subscribes to it, approves the
peer's subscription request, waits for the subscription to be "both" and
for the peer's available presence, sends a message and waits for the
reply. Every step is printed on stdout as one JSON object per line; the Go
test asserts them. Exits 0 when the scenario completed, 1 otherwise.
The certificate is checked against SSL_CERT_FILE.
"""

import asyncio
import json
import logging
import os
import sys

import slixmpp


def emit(event, **kw):
    kw["event"] = event
    print(json.dumps(kw), flush=True)


class Peer(slixmpp.ClientXMPP):
    def __init__(self, cfg):
        super().__init__(cfg["jid"], cfg["password"], sasl_mech=cfg.get("mechanism"))
        self.cfg = cfg
        if cfg.get("no_channel_binding"):
            # Without channel-binding data slixmpp sends the gs2 flag "n".
            # With it, slixmpp binds with tls-unique (undefined for TLS 1.3,
            # RFC 9266) or, for a non-PLUS mechanism, sends "y", which a
            # server offering -PLUS must refuse (RFC 5802 section 6).
            plugin = self.plugin["feature_mechanisms"]
            default = plugin.sasl_callback

            def credentials(required, optional):
                creds = default(required, optional)
                creds.pop("channel_binding", None)
                return creds

            plugin.sasl_callback = credentials
        self.peer = slixmpp.JID(cfg["peer"])
        self.done = asyncio.get_running_loop().create_future()
        self.peer_available = asyncio.Event()
        self.subscribed_both = asyncio.Event()
        self.got_reply = asyncio.Event()
        # Answer subscription requests ourselves, and do not subscribe back
        # automatically: the test drives each step.
        self.roster.auto_authorize = None
        self.roster.auto_subscribe = False
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("auth_success", self.on_auth)
        # failed_auth fires for each mechanism that failed (slixmpp then
        # tries the next one); failed_all_auth when none is left.
        self.add_event_handler("failed_auth", lambda _: emit("auth_failed"))
        self.add_event_handler("failed_all_auth", lambda _: self.fail("authentication failed"))
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("presence_subscribe", self.on_subscribe)
        self.add_event_handler("presence_subscribed", self.on_subscribed)
        self.add_event_handler("presence_available", self.on_available)
        self.add_event_handler("roster_update", self.on_roster_update)
        self.add_event_handler("message", self.on_message)

    def fail(self, why):
        emit("error", error=why)
        if not self.done.done():
            self.done.set_result(False)

    def on_auth(self, _):
        mech = self.plugin["feature_mechanisms"].mech
        emit("auth", mechanism=mech.name if mech else None)

    def on_disconnected(self, reason):
        if not self.done.done():
            self.fail("disconnected: %s" % (reason,))

    async def on_start(self, _):
        emit("session_start", jid=str(self.boundjid), tls=self.is_secure if hasattr(self, "is_secure") else None)
        try:
            await self.get_roster()
            emit("roster", items={str(j): self.client_roster[j]["subscription"] for j in self.client_roster})
            self.send_presence()
            await self.scenario()
        except Exception as e:  # noqa: BLE001 - report anything to the Go test
            self.fail("%s: %s" % (type(e).__name__, e))

    async def scenario(self):
        timeout = self.cfg.get("timeout", 60)
        await self.update_roster(self.peer, name="Peer", groups=["Test"])
        emit("roster_set", jid=str(self.peer))
        self.send_presence_subscription(pto=self.peer, ptype="subscribe")
        emit("subscribe_sent", to=str(self.peer))
        await asyncio.wait_for(self.subscribed_both.wait(), timeout)
        await asyncio.wait_for(self.peer_available.wait(), timeout)
        # Fetch the roster again: the server's view, not the cache.
        await self.get_roster()
        emit("roster", items={str(j): self.client_roster[j]["subscription"] for j in self.client_roster})
        self.send_message(mto=self.peer, mbody="hello from slixmpp", mtype="chat")
        emit("message_sent", to=str(self.peer), body="hello from slixmpp")
        await asyncio.wait_for(self.got_reply.wait(), timeout)
        emit("done")
        self.done.set_result(True)

    def on_subscribe(self, pres):
        if pres["from"].bare != self.peer.bare:
            return
        emit("presence", type="subscribe", frm=str(pres["from"]))
        self.send_presence_subscription(pto=pres["from"].bare, ptype="subscribed")
        emit("subscribed_sent", to=pres["from"].bare)

    def on_subscribed(self, pres):
        emit("presence", type="subscribed", frm=str(pres["from"]))

    def on_available(self, pres):
        if pres["from"].bare == self.peer.bare:
            emit("presence", type="available", frm=str(pres["from"]))
            self.peer_available.set()

    def on_roster_update(self, iq):
        for j, item in iq["roster"]["items"].items():
            emit("roster_push", jid=str(j), subscription=item["subscription"])
            if str(j) == self.peer.bare and item["subscription"] == "both":
                self.subscribed_both.set()

    def on_message(self, msg):
        if msg["type"] in ("chat", "normal"):
            emit("message", frm=str(msg["from"]), body=msg["body"], type=msg["type"])
            if msg["from"].bare == self.peer.bare:
                self.got_reply.set()


async def main(cfg):
    xmpp = Peer(cfg)
    xmpp.connect(address=(cfg["host"], int(cfg["port"])), force_starttls=True)
    try:
        ok = await asyncio.wait_for(xmpp.done, cfg.get("timeout", 60))
    except asyncio.TimeoutError:
        emit("error", error="timed out")
        ok = False
    try:
        await asyncio.wait_for(xmpp.disconnect(), 10)
    except asyncio.TimeoutError:
        emit("error", error="no clean disconnect")
        ok = False
    return ok


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG if os.environ.get("STOA_E2E_TRACE") == "1" else logging.ERROR, stream=sys.stderr)
    ok = asyncio.run(main(json.loads(sys.argv[1])))
    sys.exit(0 if ok else 1)
