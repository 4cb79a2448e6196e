#!/usr/bin/python3
"""slixmpp client for the stoa stream management / carbons / CSI / push tests.

Usage: slix_sm.py '{"jid": ..., "password": ..., "host": ..., "port": ...,
                    "push": "service JID or empty", "timeout": ...}'

Logs in over STARTTLS with stream management (XEP-0198, resumable),
enables carbons (XEP-0280) and, when "push" is set, push notifications
(XEP-0357, sent as a plain IQ: slixmpp 1.8.3 has no plugin for it), sends
initial presence, then follows commands read from stdin, one per line:

  ack        send <a/> with the handled count, then ping the server, and
             emit "acked" once the pong came back (the server handled the
             <a/> before the ping: streams are processed in order)
  inactive   send <inactive/> (XEP-0352) and ping, emit "csi"
  active     send <active/> and ping, emit "csi"
  reconnect  connect again (after the Go test cut the connection): the
             plugin resumes the session, or binds a new one if it cannot
  quit       disconnect and exit 0

Every event is printed on stdout as one JSON object per line: session_start,
sm_enabled (id), session_resumed, sm_failed, disconnected, message (id,
body, delay, carbon), acked, csi. The certificate is checked against
SSL_CERT_FILE.
"""

import asyncio
import json
import logging
import sys

import slixmpp
from slixmpp.xmlstream import ET


def emit(event, **kw):
    kw["event"] = event
    print(json.dumps(kw), flush=True)


class Client(slixmpp.ClientXMPP):
    def __init__(self, cfg):
        super().__init__(cfg["jid"], cfg["password"], sasl_mech="SCRAM-SHA-256")
        self.cfg = cfg
        # Without channel-binding data slixmpp sends the gs2 flag "n" (see
        # slix_peer.py: its tls-unique binding is undefined for TLS 1.3).
        plugin = self.plugin["feature_mechanisms"]
        default = plugin.sasl_callback

        def credentials(required, optional):
            creds = default(required, optional)
            creds.pop("channel_binding", None)
            return creds

        plugin.sasl_callback = credentials
        for p in ("xep_0030", "xep_0085", "xep_0198", "xep_0199", "xep_0280", "xep_0352", "xep_0203"):
            self.register_plugin(p)
        # Ask for an ack often so that the queues stay short.
        self["xep_0198"].window = 1
        self.add_event_handler("session_start", self.on_start)
        self.add_event_handler("sm_enabled", lambda s: emit("sm_enabled", id=s["id"]))
        self.add_event_handler("session_resumed", lambda _: emit("session_resumed"))
        self.add_event_handler("sm_failed", lambda _: emit("sm_failed"))
        self.add_event_handler("disconnected", lambda r: emit("disconnected", reason=str(r)))
        self.add_event_handler("failed_auth", lambda _: emit("error", error="authentication failed"))
        self.add_event_handler("message", self.on_message)
        self.add_event_handler("chatstate", self.on_chatstate)
        self.add_event_handler("carbon_received", self.on_carbon)
        self.add_event_handler("carbon_sent", self.on_carbon)

    async def on_start(self, _):
        emit("session_start", jid=str(self.boundjid))
        try:
            await self["xep_0280"].enable()
            if self.cfg.get("push"):
                iq = self.make_iq_set()
                enable = ET.Element("{urn:xmpp:push:0}enable", jid=self.cfg["push"], node="slix-node")
                iq.append(enable)
                await iq.send()
                emit("push_enabled")
            self.send_presence()
        except Exception as e:  # noqa: BLE001 - report anything to the Go test
            emit("error", error="%s: %s" % (type(e).__name__, e))

    def on_message(self, msg):
        if msg["type"] not in ("chat", "normal"):
            return
        if msg.xml.find("{urn:xmpp:carbons:2}received") is not None or msg.xml.find("{urn:xmpp:carbons:2}sent") is not None:
            return  # reported by on_carbon
        emit("message", id=msg["id"], body=msg["body"], delay=msg.xml.find("{urn:xmpp:delay}delay") is not None,
             carbon=False, chatstate=msg["chat_state"] or "")

    def on_chatstate(self, msg):
        # slixmpp's "message" event needs a body; chat states come alone.
        if msg["body"] or msg.xml.find("{urn:xmpp:carbons:2}received") is not None:
            return
        emit("message", id=msg["id"], body="", delay=msg.xml.find("{urn:xmpp:delay}delay") is not None,
             carbon=False, chatstate=msg["chat_state"])

    def on_carbon(self, msg):
        inner = msg["carbon_received"] if msg.xml.find("{urn:xmpp:carbons:2}received") is not None else msg["carbon_sent"]
        emit("message", id=inner["id"], body=inner["body"], delay=False, carbon=True, chatstate="")

    async def ping(self):
        await self["xep_0199"].send_ping(self.boundjid.domain, timeout=30)

    async def command(self, line):
        if line == "ack":
            self["xep_0198"].send_ack()
            await self.ping()
            emit("acked", handled=self["xep_0198"].handled)
        elif line in ("inactive", "active"):
            getattr(self["xep_0352"], "send_" + line)()
            await self.ping()
            emit("csi", state=line)
        elif line == "reconnect":
            self.connect(address=(self.cfg["host"], self.cfg["port"]))
        elif line == "quit":
            self.disconnect()
            return False
        return True


async def main():
    cfg = json.loads(sys.argv[1])
    if cfg.get("debug"):
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    c = Client(cfg)
    c.connect(address=(cfg["host"], cfg["port"]))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout=cfg.get("timeout", 120))
        if not line:
            return 1
        try:
            if not await c.command(line.decode().strip()):
                await asyncio.sleep(0.2)
                return 0
        except Exception as e:  # noqa: BLE001
            emit("error", error="%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
