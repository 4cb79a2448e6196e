#!/usr/bin/python3
"""slixmpp administrator for the stoa end-to-end tests (XEP-0050, XEP-0133).

Usage: slix_admin.py '{"jid": ..., "password": ..., "host": ..., "port": ...,
                       "domain": ..., "new_user": ..., "kick": ...,
                       "expect_admin": true, "timeout": ...}'

With expect_admin, it lists the server's commands, counts the registered
users, adds new_user, changes its password, gets its statistics, lists the
online users, ends the sessions of `kick`, disables and re-enables new_user
and deletes it, counting again. Without, it checks that the admin commands
are neither listed nor runnable. Every result is printed on stdout as one
JSON object per line; the Go test asserts them. Exits 0 when the scenario
ran to its end (the Go side judges the results), 1 otherwise.
"""

import asyncio
import json
import logging
import os
import sys

import slixmpp
from slixmpp.exceptions import IqError

ADMIN = "http://jabber.org/protocol/admin#"


def emit(event, **kw):
    kw["event"] = event
    print(json.dumps(kw), flush=True)


class Admin(slixmpp.ClientXMPP):
    def __init__(self, cfg):
        super().__init__(cfg["jid"], cfg["password"], sasl_mech="SCRAM-SHA-256")
        self.cfg = cfg
        # As slix_peer.py with no_channel_binding: without channel-binding
        # data slixmpp sends the gs2 flag "n" (this test is about commands,
        # not SASL).
        plugin = self.plugin["feature_mechanisms"]
        default = plugin.sasl_callback

        def credentials(required, optional):
            creds = default(required, optional)
            creds.pop("channel_binding", None)
            return creds

        plugin.sasl_callback = credentials
        self.register_plugin("xep_0004")
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0050")
        self.done = asyncio.get_running_loop().create_future()
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

    async def on_start(self, _):
        emit("session_start", jid=str(self.boundjid))
        try:
            self.send_presence()
            if self.cfg.get("expect_admin"):
                await self.admin_scenario()
            else:
                await self.user_scenario()
            emit("done")
            self.done.set_result(True)
        except Exception as e:  # noqa: BLE001 - report anything to the Go test
            self.fail("%s: %s" % (type(e).__name__, e))

    def submit(self, fields):
        form = self["xep_0004"].make_form(ftype="submit")
        form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/admin")
        for var, (ftype, value) in fields.items():
            form.add_field(var=var, ftype=ftype, value=value)
        return form

    async def run(self, name, fields=None):
        """Runs an admin command: execute, then (if it asks) submit fields."""
        domain = self.cfg["domain"]
        node = ADMIN + name
        resp = await self["xep_0050"].send_command(domain, node, action="execute")
        cmd = resp["command"]
        if cmd["status"] == "executing":
            form = cmd["form"]
            emit("form", command=name, fields=[f for f in form.get_fields()],
                 actions=sorted(cmd["actions"]), sessionid=cmd["sessionid"])
            resp = await self["xep_0050"].send_command(
                domain, node, action="complete", sessionid=cmd["sessionid"],
                payload=self.submit(fields or {}))
            cmd = resp["command"]
        values = {}
        if cmd["form"] is not None:
            for var, f in cmd["form"].get_fields().items():
                values[var] = f.get_value()
        result = dict(command=name, status=cmd["status"],
                      notes=[[t, n] for t, n in cmd["notes"]], values=values)
        emit("result", **result)
        return result

    async def admin_scenario(self):
        domain = self.cfg["domain"]
        new = self.cfg["new_user"]
        items = await self["xep_0050"].get_commands(domain)
        emit("commands", nodes=[i[1] for i in items["disco_items"]["items"]])
        info = await self["xep_0030"].get_info(jid=domain, node=ADMIN + "add-user")
        emit("command_info", identities=[list(i) for i in info["disco_info"]["identities"]],
             features=sorted(info["disco_info"]["features"]))
        await self.run("get-registered-users-num")
        await self.run("add-user", {"accountjid": ("jid-single", new), "password": ("text-private", "first pw"),
                                    "password-verify": ("text-private", "first pw")})
        try:
            await self.run("add-user", {"accountjid": ("jid-single", new), "password": ("text-private", "x"),
                                        "password-verify": ("text-private", "x")})
        except IqError as e:
            emit("iq_error", command="add-user", condition=e.condition, text=e.text)
        await self.run("get-registered-users-num")
        await self.run("change-user-password", {"accountjid": ("jid-single", new), "password": ("text-private", "second pw")})
        await self.run("user-stats", {"accountjid": ("jid-single", self.boundjid.bare)})
        await self.run("get-online-users-num")
        await self.run("get-online-users-list", {"max_items": ("list-single", "100")})
        await self.run("get-registered-users-list", {"max_items": ("list-single", "none")})
        await self.run("end-user-session", {"accountjids": ("jid-multi", [self.cfg["kick"]])})
        await self.run("disable-user", {"accountjids": ("jid-multi", [new]), "reason": ("text-single", "testing")})
        await self.run("reenable-user", {"accountjids": ("jid-multi", [new])})
        # Cancel a started command.
        resp = await self["xep_0050"].send_command(domain, ADMIN + "delete-user", action="execute")
        sid = resp["command"]["sessionid"]
        resp = await self["xep_0050"].send_command(domain, ADMIN + "delete-user", action="cancel", sessionid=sid)
        emit("result", command="cancel", status=resp["command"]["status"], notes=[], values={})
        await self.run("delete-user", {"accountjids": ("jid-multi", [new])})
        await self.run("get-registered-users-num")

    async def user_scenario(self):
        domain = self.cfg["domain"]
        items = await self["xep_0050"].get_commands(domain)
        emit("commands", nodes=[i[1] for i in items["disco_items"]["items"]])
        try:
            await self.run("add-user", {"accountjid": ("jid-single", self.cfg["new_user"]), "password": ("text-private", "x")})
            emit("result", command="add-user", status="allowed?!", notes=[], values={})
        except IqError as e:
            emit("iq_error", command="add-user", condition=e.condition, text=e.text)


async def main(cfg):
    xmpp = Admin(cfg)
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
