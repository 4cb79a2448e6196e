// xmpp.js 0.14 client for stoa's stream management end-to-end test
// (e2e/sm_test.go). Usage:
//
//   node sm.mjs '{"modules": ..., "service": "xmpp://127.0.0.1:PORT",
//                 "domain": "localhost", "username": ..., "password": ...,
//                 "resource": ...}'
//
// It logs in over STARTTLS (xmpp.js enables stream management with
// resumption by itself), sends initial presence, and prints one JSON event
// per line: online (jid, sm id), message (id, delay), disconnected,
// resumed. Automatic reconnection is off: the Go test cuts the TCP
// connection, then writes "reconnect" on stdin, and xmpp.js resumes the
// session on a new connection. "quit" stops the client.
// NODE_EXTRA_CA_CERTS must name the test CA.

import path from "node:path";
import readline from "node:readline";
import { pathToFileURL } from "node:url";

const cfg = JSON.parse(process.argv[2]);
const emit = (event, fields = {}) => process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");

// The modules live in a cache directory (npm ci by the Go test); ESM
// ignores NODE_PATH, so import by path.
const { client, xml } = await import(pathToFileURL(path.join(cfg.modules, "@xmpp", "client", "index.js")).href);

const xmpp = client({
  service: cfg.service,
  domain: cfg.domain,
  username: cfg.username,
  password: cfg.password,
  resource: cfg.resource,
});
xmpp.reconnect.stop();

xmpp.on("error", (err) => emit("log", { error: String(err && err.message ? err.message : err) }));
xmpp.on("disconnect", () => emit("disconnected"));
xmpp.on("online", async (jid) => {
  // "online" comes once the resource is bound; <enabled/> may follow.
  const sm = xmpp.streamManagement;
  for (let i = 0; i < 1000 && !sm.enabled; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  emit("online", { jid: jid.toString(), smid: sm.id });
  await xmpp.send(xml("presence"));
});
xmpp.streamManagement.on("resumed", () => emit("resumed", { smid: xmpp.streamManagement.id }));
xmpp.on("stanza", (stanza) => {
  if (stanza.is("message") && stanza.getChild("body")) {
    emit("message", { id: stanza.attrs.id, delay: !!stanza.getChild("delay", "urn:xmpp:delay") });
  }
});

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", async (line) => {
  try {
    if (line === "reconnect") {
      await xmpp.reconnect.reconnect();
    } else if (line === "quit") {
      rl.close();
      await xmpp.stop().catch(() => {});
      process.exit(0);
    }
  } catch (err) {
    emit("error", { error: String(err && err.message ? err.message : err) });
  }
});
rl.on("close", () => process.exit(0));

try {
  await xmpp.start();
} catch (err) {
  emit("error", { error: "start: " + String(err && err.message ? err.message : err) });
  process.exit(1);
}
