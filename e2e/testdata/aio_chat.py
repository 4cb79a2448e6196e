#!/usr/bin/python3
"""aioxmpp client for the stoa end-to-end tests.

Usage: aio_chat.py '{"jid": ..., "password": ..., "host": ..., "port": ...,
                     "peer": ..., "timeout": ...}'

Logs in over STARTTLS (override_peer with STARTTLSConnector to host:port),
becomes available, sends "hello from aioxmpp" to `peer` and waits for a chat
message from it. Every step is printed on stdout as one JSON object per
line; the Go test asserts them. Exits 0 when a reply arrived, 1 otherwise.
The certificate is checked against SSL_CERT_FILE.
"""

import asyncio
import json
import logging
import os
import sys

import aioxmpp
import aioxmpp.connector
import aioxmpp.dispatcher


def emit(event, **kw):
    kw["event"] = event
    print(json.dumps(kw), flush=True)


async def main(cfg):
    jid = aioxmpp.JID.fromstr(cfg["jid"])
    peer = aioxmpp.JID.fromstr(cfg["peer"])
    timeout = cfg.get("timeout", 60)
    client = aioxmpp.PresenceManagedClient(
        jid,
        aioxmpp.make_security_layer(cfg["password"]),
        override_peer=[(cfg["host"], int(cfg["port"]), aioxmpp.connector.STARTTLSConnector())],
    )
    reply = asyncio.get_running_loop().create_future()

    def on_message(msg):
        body = msg.body.any() if msg.body else None
        emit("message", frm=str(msg.from_), body=body, type=msg.type_.value)
        if msg.from_.bare() == peer.bare() and not reply.done():
            reply.set_result(body)

    dispatcher = client.summon(aioxmpp.dispatcher.SimpleMessageDispatcher)
    dispatcher.register_callback(aioxmpp.MessageType.CHAT, None, on_message)

    try:
        async with client.connected() as stream:
            emit("session_start", jid=str(client.local_jid))
            msg = aioxmpp.Message(to=peer, type_=aioxmpp.MessageType.CHAT)
            msg.body[None] = "hello from aioxmpp"
            await client.send(msg)
            emit("message_sent", to=str(peer), body="hello from aioxmpp")
            body = await asyncio.wait_for(reply, timeout)
            emit("done", reply=body)
    except Exception as e:  # noqa: BLE001 - report anything to the Go test
        emit("error", error="%s: %s" % (type(e).__name__, e))
        return False
    return True


if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG if os.environ.get("STOA_E2E_TRACE") == "1" else logging.ERROR, stream=sys.stderr)
    cfg = json.loads(sys.argv[1])
    try:
        ok = asyncio.run(asyncio.wait_for(main(cfg), cfg.get("timeout", 60) + 10))
    except asyncio.TimeoutError:
        emit("error", error="timed out")
        ok = False
    sys.exit(0 if ok else 1)
