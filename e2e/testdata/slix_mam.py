#!/usr/bin/python3
"""slixmpp message-archive client for the stoa end-to-end tests.

Usage: slix_mam.py '{"jid": ..., "password": ..., "host": ..., "port": ...,
                     "peer": ..., "expect": N, "timeout": ...}'

Logs in over STARTTLS, becomes available and waits for the `expect`
messages the peer sent while it was offline (reporting the XEP-0359
stanza-id each carries). Then, with slixmpp's XEP-0313 plugin, pages
through its own archive five messages at a time, queries the messages
with the peer, asks for the archive's metadata, and finally sends two
messages to the peer. Every step is printed on stdout as one JSON object
per line; the Go test asserts them. Exits 0 when the scenario completed,
1 otherwise. The certificate is checked against SSL_CERT_FILE.
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


class Archiver(slixmpp.ClientXMPP):
    def __init__(self, cfg):
        super().__init__(cfg["jid"], cfg["password"], sasl_mech="SCRAM-SHA-256")
        self.cfg = cfg
        # Without channel-binding data slixmpp sends the gs2 flag "n" (see
        # slix_peer.py: slixmpp's tls-unique binding is undefined for TLS
        # 1.3).
        plugin = self.plugin["feature_mechanisms"]
        default = plugin.sasl_callback

        def credentials(required, optional):
            creds = default(required, optional)
            creds.pop("channel_binding", None)
            return creds

        plugin.sasl_callback = credentials
        self.peer = slixmpp.JID(cfg["peer"])
        self.done = asyncio.get_running_loop().create_future()
        self.received = 0
        self.all_received = asyncio.Event()
        for plugin in ("xep_0030", "xep_0059", "xep_0297", "xep_0313", "xep_0359"):
            self.register_plugin(plugin)
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("failed_auth", lambda _: self.fail("authentication failed"))
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("message", self.on_message)

    def fail(self, why):
        emit("error", error=why)
        if not self.done.done():
            self.done.set_result(False)

    def on_disconnected(self, reason):
        if not self.done.done():
            self.fail("disconnected: %s" % (reason,))

    def on_message(self, msg):
        # Archive results arrive as messages too; they carry no body at
        # the top level.
        if msg["type"] not in ("chat", "normal") or not msg["body"]:
            return
        sid = msg["stanza_id"]
        emit("message", frm=str(msg["from"]), body=msg["body"], stanza_id=sid["id"], by=str(sid["by"]))
        if msg["from"].bare == self.peer.bare:
            self.received += 1
            if self.received >= self.cfg["expect"]:
                self.all_received.set()

    async def on_start(self, _):
        emit("session_start", jid=str(self.boundjid))
        try:
            self.send_presence()
            await self.scenario()
        except Exception as e:  # noqa: BLE001 - report anything to the Go test
            self.fail("%s: %s" % (type(e).__name__, e))

    async def scenario(self):
        timeout = self.cfg.get("timeout", 60)
        own = slixmpp.JID(self.boundjid.bare)
        await asyncio.wait_for(self.all_received.wait(), timeout)

        # Page forward through the whole archive, 5 at a time (slixmpp's
        # RSM iterator over XEP-0313 pages).
        mam = self["xep_0313"]
        pages = 0
        async for page in mam.retrieve(jid=own, iterator=True, rsm={"max": 5}):
            pages += 1
            fin = page["mam_fin"]
            emit("page", complete=fin.xml.get("complete"), first=fin["rsm"]["first"], last=fin["rsm"]["last"],
                 index=fin["rsm"]["first_index"], count=fin["rsm"]["count"], results=len(page["mam"]["results"]))
            for msg in page["mam"]["results"]:
                res = msg["mam_result"]
                fwd = res["forwarded"]
                emit("mam", id=res["id"], body=fwd["stanza"]["body"], frm=str(fwd["stanza"]["from"]),
                     stamp=str(fwd["delay"]["stamp"]), page=pages)
        emit("pages", count=pages)

        # Only the conversation with the peer, in one page.
        res = await mam.retrieve(jid=own, with_jid=self.peer, rsm={"max": 50}, timeout=timeout)
        emit("with", count=len(res["mam"]["results"]), complete=res["mam_fin"].xml.get("complete"),
             total=res["mam_fin"]["rsm"]["count"])

        meta = await mam.get_archive_metadata(jid=own, timeout=timeout)
        emit("metadata", start=meta["mam_metadata"]["start"]["id"], end=meta["mam_metadata"]["end"]["id"])

        for body in ("reply one", "reply two"):
            self.send_message(mto=self.peer, mbody=body, mtype="chat")
        emit("sent", count=2)
        emit("done")
        self.done.set_result(True)


async def main(cfg):
    xmpp = Archiver(cfg)
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
