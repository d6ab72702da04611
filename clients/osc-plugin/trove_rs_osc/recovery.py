"""`openstack database instance recover` and what shows a recovery: `recovery list`,
`recovery show` and `instance recovery-window`.

`instance recover` brings a running instance back in place, to a backup or to a point of its WAL
(a time, the latest commit, an LSN, a transaction or a restore point), and with `--wait` follows
it to the end (see `progress`); with `--preview` it stops at a read-only preview, which `recovery
confirm` or `recovery cancel` settles, and `recovery move` moves on to a later target.
"""

from osc_lib import exceptions
from osc_lib.cli import format_columns
from osc_lib.command import command

from trove_rs_osc import common, progress

RECOVER_FIELDS = ("id", "name", "status", "datastore", "recovered_from_backup", "point_in_time",
                  "target", "timeline", "recovery_id", "preview")
RECOVERY_FIELDS = ("id", "instance_id", "backup_id", "state", "phase", "target", "progress",
                   "outcome", "error", "error_code", "created", "finished", "duration_ms", "phases",
                   "preview", "moves", "moved_from", "cancel_reason")
WINDOW_FIELDS = ("timeline", "earliest", "latest", "lineage", "gaps", "backups", "timelines",
                 "retention")


def named_target(args):
    """The target part of a `{"recovery": …}` body for `--time`, `--lsn`, `--xid [--exclusive]`
    or `--restore-point`, plus `--timeline`: what `instance recover` and `recovery move` share."""
    if args.exclusive and args.xid is None:
        raise exceptions.CommandError("--exclusive applies to --xid only")
    rec = {}
    if args.time:
        rec["point_in_time"] = args.time
    elif args.lsn:
        rec["target"] = {"lsn": args.lsn}
    elif args.xid is not None:
        rec["target"] = {"xid": args.xid}
        if args.exclusive:
            rec["target"]["inclusive"] = False
    elif args.restore_point:
        rec["target"] = {"restore_point": args.restore_point}
    if args.timeline is not None:
        rec["timeline"] = args.timeline
    return rec


def recovery_body(args, backup_id=None):
    """The `{"recovery": …}` body for the parsed `instance recover` arguments."""
    rec = named_target(args)
    if args.backup:
        rec["backup"] = backup_id
    elif args.latest:
        rec["point_in_time"] = "latest"
    if args.preview:
        rec["preview"] = True
    return {"recovery": rec}


def target_summary(t):
    """A history record's target in a few words, its kind first: `xid 812 exclusive`."""
    if not t:
        return ""
    kind = t.get("kind")
    if kind == "time":
        text = f"time {t.get('time')}"
    elif kind == "lsn":
        text = f"lsn {t.get('lsn')}"
    elif kind == "xid":
        text = f"xid {t.get('xid')} " + ("exclusive" if t.get("inclusive") is False else "inclusive")
    elif kind == "restore_point":
        text = f"restore point {t.get('restore_point')} at {t.get('lsn')}"
    else:
        text = str(kind)
    if kind != "backup" and t.get("timeline") is not None:
        text += f" on timeline {t['timeline']}"
    return text


class Target(common.Dict):
    def human_readable(self):
        return target_summary(self._value)


class Preview(common.Dict):
    """A waiting preview's `{"address", "port", "expires_at"}`; the request's `true` as is."""

    def human_readable(self):
        if isinstance(self._value, dict):
            return progress.preview_summary(self._value)
        return str(self._value)


class Phases(common.Lines):
    @staticmethod
    def line(p):
        took = "running" if p.get("duration_ms") is None else f"{p['duration_ms']} ms"
        # A moved preview goes through its phases again: each pass names its move.
        moved = f" (move {p['move']})" if p.get("move") else ""
        return f"{p.get('phase')}{moved}: {took} (from {p.get('started')})"


class Backups(common.Lines):
    @staticmethod
    def line(b):
        return (f"{b.get('id')}: stop {b.get('stop_time')}, timeline {b.get('timeline')},"
                f" start lsn {b.get('start_lsn')}")


class Timelines(common.Lines):
    @staticmethod
    def line(t):
        parent = "" if t.get("parent") is None else f", from {t['parent']} at {t.get('switch_lsn')}"
        gaps = f", {len(t['gaps'])} gap(s)" if t.get("gaps") else ""
        return (f"{t.get('timeline')}{parent}: segments {t.get('first_segment')}..{t.get('last_segment')},"
                f" latest commit {t.get('latest_commit')} at {t.get('latest_lsn')}{gaps}")


class RecoverInstance(command.ShowOne):
    """Recover an instance in place, to a backup or a point of its WAL"""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance", metavar="<instance>", help="Instance (name or ID)")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--backup", metavar="<backup>",
                            help="To the end of this backup (name or ID), of any instance")
        target.add_argument("--time", metavar="<time>",
                            help="To a time: RFC 3339 with a zone offset, e.g. 2026-11-25T18:04:57+01:00")
        target.add_argument("--latest", action="store_true",
                            help="To the last commit the WAL store holds")
        target.add_argument("--lsn", metavar="<X/Y>", help="To a WAL position, e.g. 0/3000028")
        target.add_argument("--xid", metavar="<xid>", type=int,
                            help="To just after (or, with --exclusive, just before) a transaction")
        target.add_argument("--restore-point", metavar="<name>", help="To a restore point")
        parser.add_argument("--exclusive", action="store_true",
                            help="With --xid: stop just before the transaction, undoing it")
        parser.add_argument("--timeline", metavar="<timeline>", type=int,
                            help="Follow this timeline's history (default: the current one)")
        parser.add_argument("--preview", action="store_true",
                            help="Stop at a read-only preview of the target on a port of its own; "
                                 "settle it with `recovery confirm` or `recovery cancel`, or "
                                 "move it on with `recovery move`")
        parser.add_argument("--wait", action="store_true",
                            help="Follow the recovery with a progress line on stderr until it "
                                 "ends (with --preview: until the preview is ready); fail if it "
                                 "fails")
        return parser

    def take_action(self, args):
        recovery_body(args)  # refuses bad flags before any request
        inst = common.find_instance(self.app, args.instance)
        backup_id = common.find_backup(self.app, args.backup).id if args.backup else None
        if args.wait:
            # A fault already there is not this recovery's.
            shown = common.get(self.app, common.instance_path(inst.id))["instance"]
        body = common.post(self.app, common.instance_path(inst.id, "recover"),
                           recovery_body(args, backup_id))
        answer = body["recovery"]
        if args.wait and args.preview:
            record = progress.wait(self.app, inst.id, answer["recovery_id"], shown.get("fault"),
                                   until="PREVIEW")
            answer = dict(answer, preview=record.get("preview"))
        elif args.wait:
            progress.wait(self.app, inst.id, answer["recovery_id"], shown.get("fault"))
        return common.show(answer, RECOVER_FIELDS, {"target": common.Dict, "preview": Preview})


class ListRecoveries(command.Lister):
    """List an instance's recoveries, newest first"""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance", metavar="<instance>", help="Instance (name or ID)")
        parser.add_argument("--limit", metavar="<limit>", type=int,
                            help="Return one page of at most this many")
        parser.add_argument("--marker", metavar="<id>",
                            help="Begin after this recovery (the last of the previous page)")
        return parser

    def take_action(self, args):
        inst = common.find_instance(self.app, args.instance)
        path = common.instance_path(inst.id, "recoveries")
        records, marker = [], args.marker
        while True:
            page = common.get(self.app, path, limit=args.limit, marker=marker)
            records += page["recoveries"]
            if args.limit is not None or not page.get("links") or not page["recoveries"]:
                break
            marker = page["recoveries"][-1]["id"]
        cols = ("ID", "State", "Phase", "Target", "Backup", "Created", "Duration (ms)", "Error Code")
        rows = [(r["id"], r["state"], r["phase"], target_summary(r.get("target")), r.get("backup_id"),
                 r.get("created"), r.get("duration_ms"), r.get("error_code")) for r in records]
        return cols, rows


class ShowRecovery(command.ShowOne):
    """Show one recovery of an instance, with its phases"""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance", metavar="<instance>", help="Instance (name or ID)")
        parser.add_argument("recovery", metavar="<recovery>", help="Recovery ID")
        return parser

    def take_action(self, args):
        inst = common.find_instance(self.app, args.instance)
        record = common.get(self.app, common.instance_path(inst.id, "recoveries", args.recovery))
        return common.show(record["recovery"], RECOVERY_FIELDS, {
            "target": Target, "progress": common.Dict, "outcome": common.Dict, "phases": Phases,
            "preview": Preview, "moved_from": Target})


class SettlePreview(command.ShowOne):
    """Settles a recovery's waiting preview (subclasses name the action)"""

    action = None  # "confirm" or "cancel"
    ends_in = None  # the recovery's state once it is done

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance", metavar="<instance>", help="Instance (name or ID)")
        parser.add_argument("recovery", metavar="<recovery>", help="Recovery ID (in state PREVIEW)")
        parser.add_argument("--wait", action="store_true",
                            help=f"Follow it until the recovery is {self.ends_in} and the "
                                 "instance ACTIVE; fail if it fails")
        return parser

    def take_action(self, args):
        inst = common.find_instance(self.app, args.instance)
        if args.wait:
            shown = common.get(self.app, common.instance_path(inst.id))["instance"]
        path = common.instance_path(inst.id, "recoveries", args.recovery, self.action)
        record = common.post(self.app, path, None)["recovery"]
        if args.wait:
            progress.wait(self.app, inst.id, args.recovery, shown.get("fault"), until=self.ends_in)
            record = common.get(self.app, common.instance_path(
                inst.id, "recoveries", args.recovery))["recovery"]
        return common.show(record, RECOVERY_FIELDS, {
            "target": Target, "progress": common.Dict, "outcome": common.Dict, "phases": Phases,
            "preview": Preview, "moved_from": Target})


class ConfirmRecovery(SettlePreview):
    """Confirm a recovery's preview: the instance cuts over to the previewed data"""

    action = "confirm"
    ends_in = "COMPLETED"


class CancelRecovery(SettlePreview):
    """Cancel a recovery's preview: it is discarded, the instance keeps its data"""

    action = "cancel"
    ends_in = "CANCELLED"


def move_body(args):
    """The `{"recovery": …}` body for the parsed `recovery move` arguments: one later target."""
    return {"recovery": named_target(args)}


class MoveRecovery(command.ShowOne):
    """Move a recovery's waiting preview on to a later target, without starting over"""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance", metavar="<instance>", help="Instance (name or ID)")
        parser.add_argument("recovery", metavar="<recovery>", help="Recovery ID (in state PREVIEW)")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--time", metavar="<time>",
                            help="To a later time: RFC 3339 with a zone offset")
        target.add_argument("--lsn", metavar="<X/Y>", help="To a later WAL position")
        target.add_argument("--xid", metavar="<xid>", type=int,
                            help="To just after (or, with --exclusive, just before) a transaction "
                                 "that has not committed before the preview's stop point")
        target.add_argument("--restore-point", metavar="<name>", help="To a later restore point")
        parser.add_argument("--exclusive", action="store_true",
                            help="With --xid: stop just before the transaction")
        parser.add_argument("--timeline", metavar="<timeline>", type=int,
                            help="The preview's own timeline (another one is refused)")
        parser.add_argument("--wait", action="store_true",
                            help="Follow it until the preview waits again; fail if the move "
                                 "fails (also when the preview is kept at its old target)")
        return parser

    def take_action(self, args):
        body = move_body(args)  # refuses bad flags before any request
        inst = common.find_instance(self.app, args.instance)
        if args.wait:
            shown = common.get(self.app, common.instance_path(inst.id))["instance"]
        path = common.instance_path(inst.id, "recoveries", args.recovery, "move")
        record = common.post(self.app, path, body)["recovery"]
        if args.wait:
            record = progress.wait(self.app, inst.id, args.recovery, shown.get("fault"),
                                   until="PREVIEW")
            # A move that failed early leaves the preview at its old target, saying why.
            if record.get("error_code"):
                raise exceptions.CommandError(
                    f"The move of recovery {args.recovery} failed ({record['error_code']}); the "
                    f"preview still waits at {target_summary(record.get('target'))}")
        return common.show(record, RECOVERY_FIELDS, {
            "target": Target, "progress": common.Dict, "outcome": common.Dict, "phases": Phases,
            "preview": Preview, "moved_from": Target})


class ShowRecoveryWindow(command.ShowOne):
    """Show the span an instance can be recovered to, and what it is built from"""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance", metavar="<instance>", help="Instance (name or ID)")
        parser.add_argument("--timeline", metavar="<timeline>", type=int,
                            help="For this timeline (default: the one the server runs on)")
        return parser

    def take_action(self, args):
        inst = common.find_instance(self.app, args.instance)
        window = common.get(self.app, common.instance_path(inst.id, "recovery-window"),
                            timeline=args.timeline)
        return common.show(window["recovery_window"], WINDOW_FIELDS, {
            "lineage": format_columns.ListColumn, "gaps": common.Lines, "backups": Backups,
            "timelines": Timelines, "retention": common.Dict})
