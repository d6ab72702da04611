"""`openstack database instance transactions`: what committed on an instance in a span of time,
one row per change (relation and kind), each with the `instance recover` flags that undo its
transaction (recover to just before it).

The API answers `GET /instances/{id}/transactions?since[&until][&kind][&relation]` with
`{"listing": {"id", "status", "truncated", "transactions": [{"xid", "timeline", "lsn",
"commit_time", "changes": [{"database", "relation", "kind", "rows"}], "undo": {"xid",
"inclusive"}}]}}`; `status` is `RUNNING` (HTTP 202) while the guest still reads the WAL, and the
listing is then read again by its id until it is `COMPLETED`.
"""

import time

from osc_lib import exceptions
from osc_lib.command import command

from trove_rs_osc import common

#: How long and how often a listing still running is read again.
POLL_FOR, POLL_EVERY = 300, 1.0

KINDS = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "CREATE", "DROP", "ALTER")
COLUMNS = ("XID", "Commit Time", "LSN", "Database", "Relation", "Kind", "Rows", "Undo")


def undo_flags(undo):
    """`instance recover` flags for an `undo` object: `--xid 812 --exclusive`."""
    if not undo:
        return ""
    return f"--xid {undo['xid']}" + (" --exclusive" if undo.get("inclusive") is False else "")


def rows(transactions):
    """One row per change; a transaction without changes still gets one."""
    out = []
    for t in transactions:
        head = (t.get("xid"), t.get("commit_time"), t.get("lsn"))
        undo = undo_flags(t.get("undo"))
        for c in t.get("changes") or [{}]:
            out.append(head + (c.get("database"), c.get("relation"), c.get("kind"), c.get("rows"), undo))
    return out


class ListTransactions(command.Lister):
    """List the transactions committed on an instance in a span of time"""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance", metavar="<instance>", help="Instance (name or ID)")
        parser.add_argument("--since", metavar="<time>", required=True,
                            help="From this time (RFC 3339 with a zone offset)")
        parser.add_argument("--until", metavar="<time>",
                            help="Up to this time (RFC 3339 with a zone offset; default: now)")
        parser.add_argument("--kind", metavar="<kind>", type=str.upper, choices=KINDS,
                            help="Only changes of this kind: " + ", ".join(KINDS))
        parser.add_argument("--relation", metavar="<name>",
                            help="Only changes to this relation, e.g. public.orders")
        return parser

    def take_action(self, args):
        inst = common.find_instance(self.app, args.instance)
        path = common.instance_path(inst.id, "transactions")
        listed = common.get(self.app, path, since=args.since, until=args.until,
                            kind=args.kind, relation=args.relation)["listing"]
        deadline = time.monotonic() + POLL_FOR
        while listed.get("status") == "RUNNING" and time.monotonic() < deadline:
            time.sleep(POLL_EVERY)
            listed = common.get(self.app, common.instance_path(inst.id, "transactions",
                                                               listed["id"]))["listing"]
        if listed.get("status") == "RUNNING":
            raise exceptions.CommandError(
                f"listing {listed['id']} is still running; read it later with the same command")
        if listed.get("truncated"):
            self.app.stderr.write("the listing was cut: narrow --since/--until or filter\n")
        return COLUMNS, rows(listed.get("transactions") or [])
