"""Unit tests of the plugin without a server: argument parsing, the request each command sends,
how answers are printed, and how `--wait` ends. Run with
`.venv-test/bin/python -m unittest discover -s clients/osc-plugin/tests`."""

import io
import unittest
import unittest.mock
from types import SimpleNamespace

from osc_lib import exceptions

from trove_rs_osc import progress, recovery, restore_points, rewind, transactions

INST = "6f1c0d3e-5a8e-4f0b-9b7e-3f1d2c4b5a69"


class FakeHttp:
    """troveclient's session client: answers `get` from `pages` (url -> body or list of bodies,
    served in turn) and records every request."""

    def __init__(self, pages=None):
        self.pages = pages or {}
        self.sent = []

    def get(self, url):
        self.sent.append(("GET", url, None))
        answer = self.pages[url]
        if isinstance(answer, list):
            return None, answer.pop(0) if len(answer) > 1 else answer[0]
        return None, answer

    def post(self, url, body):
        self.sent.append(("POST", url, body))
        return None, self.pages[("POST", url)]

    def put(self, url, body):
        self.sent.append(("PUT", url, body))
        return None, self.pages[("PUT", url)]

    def delete(self, url):
        self.sent.append(("DELETE", url, None))
        return None, self.pages[("DELETE", url)]


def app_with(http):
    instances = SimpleNamespace(get=lambda i: SimpleNamespace(id=INST, _info={}))
    backups = SimpleNamespace(get=lambda b: SimpleNamespace(id="b-" + b))
    database = SimpleNamespace(client=http, instances=instances, backups=backups)
    return SimpleNamespace(client_manager=SimpleNamespace(database=database))


def parse(cls, argv, app=None):
    cmd = cls(app or app_with(FakeHttp()), None)
    return cmd, cmd.get_parser("openstack database").parse_args(argv)


class RecoverArguments(unittest.TestCase):
    def body(self, *argv):
        _, args = parse(recovery.RecoverInstance, [INST, *argv])
        return recovery.recovery_body(args, "B")["recovery"]

    def test_each_target(self):
        self.assertEqual(self.body("--backup", "nightly"), {"backup": "B"})
        self.assertEqual(self.body("--time", "2026-11-25T18:04:57+01:00"),
                         {"point_in_time": "2026-11-25T18:04:57+01:00"})
        self.assertEqual(self.body("--latest"), {"point_in_time": "latest"})
        self.assertEqual(self.body("--lsn", "0/3000028", "--timeline", "2"),
                         {"target": {"lsn": "0/3000028"}, "timeline": 2})
        self.assertEqual(self.body("--xid", "812"), {"target": {"xid": 812}})
        self.assertEqual(self.body("--xid", "812", "--exclusive"),
                         {"target": {"xid": 812, "inclusive": False}})
        self.assertEqual(self.body("--restore-point", "before-upgrade"),
                         {"target": {"restore_point": "before-upgrade"}})

    def test_preview_is_sent_only_when_given(self):
        self.assertEqual(self.body("--latest", "--preview"),
                         {"point_in_time": "latest", "preview": True})

    def test_exactly_one_target(self):
        for argv in ([INST], [INST, "--latest", "--lsn", "0/1"], [INST, "--xid", "x"]):
            with self.assertRaises(SystemExit), unittest.mock.patch("sys.stderr", io.StringIO()):
                parse(recovery.RecoverInstance, argv)

    def test_exclusive_needs_an_xid(self):
        with self.assertRaisesRegex(exceptions.CommandError, "--xid only"):
            self.body("--lsn", "0/1", "--exclusive")

    def test_recover_posts_and_shows_the_answer(self):
        answer = {"id": INST, "name": "pg1", "status": "BUILDING",
                  "target": {"xid": 812, "inclusive": False}, "recovery_id": "r1"}
        http = FakeHttp({("POST", f"/instances/{INST}/recover"): {"recovery": answer}})
        argv = [INST, "--xid", "812", "--exclusive"]
        cmd, args = parse(recovery.RecoverInstance, argv, app_with(http))
        cols, values = cmd.take_action(args)
        self.assertEqual(http.sent, [("POST", f"/instances/{INST}/recover",
                                      {"recovery": {"target": {"xid": 812, "inclusive": False}}})])
        shown = dict(zip(cols, values))
        self.assertEqual(shown["recovery_id"], "r1")
        self.assertEqual(shown["target"].human_readable(), "xid=812, inclusive=False")
        self.assertEqual(shown["target"].machine_readable(), answer["target"])


class History(unittest.TestCase):
    def test_target_summaries(self):
        s = recovery.target_summary
        self.assertEqual(s({"kind": "backup", "time": "t", "timeline": None}), "backup")
        self.assertEqual(s({"kind": "time", "time": "T", "timeline": 2}), "time T on timeline 2")
        self.assertEqual(s({"kind": "xid", "xid": 7, "inclusive": False}), "xid 7 exclusive")
        self.assertEqual(s({"kind": "restore_point", "restore_point": "p", "lsn": "0/5"}),
                         "restore point p at 0/5")

    def test_list_follows_pages(self):
        path = f"/instances/{INST}/recoveries"
        one = {"id": "r2", "state": "FAILED", "phase": "fetching", "target": {"kind": "latest"},
               "error_code": "checksum_mismatch"}
        two = {"id": "r1", "state": "COMPLETED", "phase": "done", "target": {"kind": "backup"}}
        http = FakeHttp({path: {"recoveries": [one], "links": [{"rel": "next"}]},
                         path + "?marker=r2": {"recoveries": [two]}})
        cmd, args = parse(recovery.ListRecoveries, [INST], app_with(http))
        cols, rows = cmd.take_action(args)
        self.assertEqual([r[0] for r in rows], ["r2", "r1"])
        self.assertEqual(dict(zip(cols, rows[0]))["Error Code"], "checksum_mismatch")

    def test_phases_print_one_a_line(self):
        phases = recovery.Phases([{"phase": "queued", "started": "A", "duration_ms": 26},
                                  {"phase": "fetching", "started": "B", "duration_ms": None}])
        self.assertEqual(phases.human_readable(), "queued: 26 ms (from A)\nfetching: running (from B)")


class Transactions(unittest.TestCase):
    def test_arguments_and_query(self):
        listed = {"listing": {"id": "L", "status": "COMPLETED", "transactions": [{
            "xid": 812, "timeline": 1, "lsn": "0/3000A28", "commit_time": "T",
            "changes": [
                {"database": "shop", "relation": "public.orders", "kind": "DELETE", "rows": 120},
                {"database": "shop", "relation": "public.items", "kind": "DROP", "rows": None}],
            "undo": {"xid": 812, "inclusive": False}}]}}
        query = "since=S&until=U&kind=DELETE&relation=public.orders"
        http = FakeHttp({f"/instances/{INST}/transactions?{query}": listed})
        argv = [INST, "--since", "S", "--until", "U", "--kind", "delete", "--relation", "public.orders"]
        cmd, args = parse(transactions.ListTransactions, argv, app_with(http))
        cols, rows = cmd.take_action(args)
        self.assertEqual(cols, transactions.COLUMNS)
        head = (812, "T", "0/3000A28", "shop")
        self.assertEqual(rows, [head + ("public.orders", "DELETE", 120, "--xid 812 --exclusive"),
                                head + ("public.items", "DROP", None, "--xid 812 --exclusive")])

    def test_refused_arguments(self):
        for argv in ([INST, "--until", "U"], [INST, "--since", "S", "--until", "U", "--kind", "SELECT"]):
            with self.assertRaises(SystemExit), unittest.mock.patch("sys.stderr", io.StringIO()):
                parse(transactions.ListTransactions, argv)

    def test_undo_flags(self):
        self.assertEqual(transactions.undo_flags({"xid": 5, "inclusive": True}), "--xid 5")
        self.assertEqual(transactions.undo_flags(None), "")


class Wait(unittest.TestCase):
    def run_wait(self, instance_views, record, fault_before=None):
        http = FakeHttp({f"/instances/{INST}": [{"instance": v} for v in instance_views],
                         f"/instances/{INST}/recoveries/r1": {"recovery": record}})
        out = io.StringIO()
        progress.wait(app_with(http), INST, "r1", fault_before, out=out, sleep=lambda s: None)
        return out.getvalue()

    def test_draws_progress_until_active(self):
        def running(phase, **progress):
            return {"status": "RECOVER", "recovery": {"id": "r1", "phase": phase, "progress": progress}}

        views = [
            running("fetching", bytes_done=1048576, bytes_total=4194304, time_left_secs=3),
            running("replaying", replayed_lsn="0/1000000", target_lsn="0/3000000", time_left_secs=None),
            running("replaying", replayed_lsn="0/2000000", target_lsn="0/3000000", time_left_secs=75),
            running("cutting_over", bytes_done=4194304, bytes_total=4194304,
                    replayed_lsn="0/3000000", target_lsn="0/3000000"),
            {"status": "ACTIVE"},
        ]
        out = self.run_wait(views, {"state": "COMPLETED", "phase": "done", "duration_ms": 4210})
        lines = out.splitlines()
        self.assertIn("fetching [#####---------------]  25% 1.0 MiB of 4.0 MiB, 3 s left", lines[0])
        self.assertIn("replaying [--------------------]   0% replayed 0/1000000 of 0/3000000", lines[1])
        self.assertIn("[##########----------]  50%", lines[2])
        self.assertIn("1 min 15 s left", lines[2])
        self.assertEqual(lines[3], "recovery: cutting_over")
        self.assertEqual(lines[-1], "recovery: COMPLETED in 4.2 s")

    def test_a_failure_raises_with_the_fault(self):
        fault = {"message": "Recovery r1 failed in phase fetching: checksum_mismatch", "created": "now"}
        with self.assertRaisesRegex(exceptions.CommandError, "checksum_mismatch"):
            self.run_wait([{"status": "ACTIVE", "fault": fault}],
                          {"state": "FAILED", "phase": "fetching", "error_code": "checksum_mismatch"},
                          fault_before={"message": "old", "created": "before"})

    def test_an_old_fault_is_not_this_recoverys(self):
        old = {"message": "old", "created": "before"}
        out = self.run_wait([{"status": "ACTIVE", "fault": old}],
                            {"state": "COMPLETED", "duration_ms": None}, fault_before=old)
        self.assertIn("COMPLETED", out)


class RestorePoints(unittest.TestCase):
    def test_create_waits_for_the_point(self):
        path = f"/instances/{INST}/restore-points"
        new = {"id": "p1", "name": "before", "status": "NEW"}
        http = FakeHttp({("POST", path): {"restore_point": new},
                         path: [{"restore_points": [new]},
                                {"restore_points": [dict(new, status="COMPLETED", lsn="0/5")]}]})
        argv = [INST, "before", "--wait"]
        cmd, args = parse(restore_points.CreateRestorePoint, argv, app_with(http))
        with unittest.mock.patch.object(restore_points, "POLL_SECS", 0):
            cols, values = cmd.take_action(args)
        self.assertEqual(dict(zip(cols, values))["lsn"], "0/5")
        self.assertEqual(http.sent[0], ("POST", path, {"restore_point": {"name": "before"}}))


class Rewind(unittest.TestCase):
    PATH = f"/instances/{INST}/rewind"

    def test_set_sends_the_window_and_waits_for_the_copy(self):
        building = {"window_minutes": 15, "status": "BUILDING"}
        ready = dict(building, status="READY", rewindable_from="2026-11-30T01:00:00Z")
        http = FakeHttp({("PUT", self.PATH): {"rewind": building},
                         self.PATH: [{"rewind": building}, {"rewind": ready}]})
        cmd, args = parse(rewind.SetRewind, [INST, "--window", "15", "--wait"], app_with(http))
        with unittest.mock.patch.object(rewind, "POLL_SECS", 0):
            cols, values = cmd.take_action(args)
        self.assertEqual(dict(zip(cols, values))["status"], "READY")
        self.assertEqual(http.sent[0], ("PUT", self.PATH, {"rewind": {"window_minutes": 15}}))

    def test_a_copy_that_failed_fails_the_wait(self):
        failed = {"window_minutes": 5, "status": "FAILED", "error": "disk full"}
        http = FakeHttp({("PUT", self.PATH): {"rewind": failed}})
        cmd, args = parse(rewind.SetRewind, [INST, "--window", "5", "--wait"], app_with(http))
        with self.assertRaises(exceptions.CommandError):
            cmd.take_action(args)

    def test_the_window_is_required_and_a_number(self):
        for argv in ([INST], [INST, "--window", "ten"]):
            with self.assertRaises(SystemExit), unittest.mock.patch("sys.stderr", io.StringIO()):
                parse(rewind.SetRewind, argv)

    def test_unset_deletes(self):
        http = FakeHttp({("DELETE", self.PATH): {"rewind": {"window_minutes": 0, "status": "OFF"}}})
        cmd, args = parse(rewind.UnsetRewind, [INST], app_with(http))
        cols, values = cmd.take_action(args)
        self.assertEqual(dict(zip(cols, values))["status"], "OFF")
        self.assertEqual(http.sent, [("DELETE", self.PATH, None)])


if __name__ == "__main__":
    unittest.main()


class Previews(unittest.TestCase):
    PREVIEW = {"address": "127.0.0.1", "port": 45123, "expires_at": "2026-11-30T01:00:00Z"}

    def test_recover_with_preview_waits_until_the_preview_is_ready(self):
        answer = {"id": INST, "status": "BUILDING", "recovery_id": "r1", "preview": True}
        waiting = {"id": "r1", "state": "PREVIEW", "phase": "preview", "preview": self.PREVIEW}
        http = FakeHttp({
            ("POST", f"/instances/{INST}/recover"): {"recovery": answer},
            f"/instances/{INST}": [
                {"instance": {"status": "ACTIVE"}},
                {"instance": {"status": "RECOVER", "recovery": {
                    "id": "r1", "state": "RUNNING", "phase": "replaying", "progress": {}}}},
                {"instance": {"status": "RECOVER", "recovery": dict(waiting, progress=None)}},
            ],
            f"/instances/{INST}/recoveries/r1": {"recovery": waiting},
        })
        cmd, args = parse(recovery.RecoverInstance, [INST, "--xid", "5", "--preview", "--wait"],
                          app_with(http))
        with unittest.mock.patch("sys.stderr", io.StringIO()) as err, \
                unittest.mock.patch.object(progress.time, "sleep", lambda s: None):
            cols, values = cmd.take_action(args)
        shown = dict(zip(cols, values))
        self.assertEqual(shown["preview"].machine_readable(), self.PREVIEW)
        self.assertEqual(shown["preview"].human_readable(),
                         "127.0.0.1:45123 until 2026-11-30T01:00:00Z")
        self.assertIn("recovery: PREVIEW at 127.0.0.1:45123", err.getvalue())
        self.assertEqual(http.sent[1], ("POST", f"/instances/{INST}/recover",
                                        {"recovery": {"target": {"xid": 5}, "preview": True}}))

    def settle(self, cls, action, final, argv=()):
        settled = {"id": "r1", "state": "RUNNING", "phase": "promoting"}
        http = FakeHttp({
            ("POST", f"/instances/{INST}/recoveries/r1/{action}"): {"recovery": settled},
            f"/instances/{INST}": [
                {"instance": {"status": "ACTIVE"}},
                {"instance": {"status": "RECOVER", "recovery": {
                    "id": "r1", "state": "RUNNING", "phase": "cutting_over", "progress": {}}}},
                {"instance": {"status": "ACTIVE"}},
            ],
            f"/instances/{INST}/recoveries/r1": {"recovery": final},
        })
        cmd, args = parse(cls, [INST, "r1", *argv], app_with(http))
        with unittest.mock.patch("sys.stderr", io.StringIO()) as err, \
                unittest.mock.patch.object(progress.time, "sleep", lambda s: None):
            cols, values = cmd.take_action(args)
        return http, dict(zip(cols, values)), err.getvalue()

    def test_confirm_posts_and_waits_for_the_cut_over(self):
        done = {"id": "r1", "state": "COMPLETED", "phase": "done", "duration_ms": 900,
                "outcome": {"downtime_ms": 250}}
        http, shown, err = self.settle(recovery.ConfirmRecovery, "confirm", done, ["--wait"])
        self.assertIn(("POST", f"/instances/{INST}/recoveries/r1/confirm", None), http.sent)
        self.assertEqual(shown["state"], "COMPLETED")
        self.assertIn("recovery: COMPLETED in 0.9 s, 250 ms of downtime", err)

    def test_cancel_without_wait_shows_the_answer(self):
        http, shown, _ = self.settle(recovery.CancelRecovery, "cancel", {})
        self.assertEqual(http.sent, [("POST", f"/instances/{INST}/recoveries/r1/cancel", None)])
        self.assertEqual(shown["phase"], "promoting")

    def test_cancel_waits_for_cancelled(self):
        gone = {"id": "r1", "state": "CANCELLED", "phase": "cancelled", "duration_ms": 100,
                "cancel_reason": "cancelled by request"}
        _, shown, err = self.settle(recovery.CancelRecovery, "cancel", gone, ["--wait"])
        self.assertEqual(shown["cancel_reason"], "cancelled by request")
        self.assertIn("recovery: CANCELLED in 0.1 s", err)

    def test_a_cancel_that_ends_otherwise_fails(self):
        failed = {"id": "r1", "state": "FAILED", "phase": "cancelling", "error_code": "internal"}
        with self.assertRaisesRegex(exceptions.CommandError, "FAILED in phase cancelling"):
            self.settle(recovery.CancelRecovery, "cancel", failed, ["--wait"])

    def move(self, argv, final):
        moving = {"id": "r1", "state": "RUNNING", "phase": "replaying", "moves": 1}
        http = FakeHttp({
            ("POST", f"/instances/{INST}/recoveries/r1/move"): {"recovery": moving},
            f"/instances/{INST}": [
                {"instance": {"status": "ACTIVE"}},
                {"instance": {"status": "RECOVER", "recovery": {
                    "id": "r1", "state": "RUNNING", "phase": "replaying", "progress": {}}}},
                {"instance": {"status": "RECOVER", "recovery": {"id": "r1", "state": "PREVIEW"}}},
            ],
            f"/instances/{INST}/recoveries/r1": {"recovery": final},
        })
        cmd, args = parse(recovery.MoveRecovery, [INST, "r1", *argv], app_with(http))
        with unittest.mock.patch("sys.stderr", io.StringIO()) as err, \
                unittest.mock.patch.object(progress.time, "sleep", lambda s: None):
            cols, values = cmd.take_action(args)
        return http, dict(zip(cols, values)), err.getvalue()

    def test_move_posts_the_later_target_and_waits_until_the_preview_waits_again(self):
        moved = {"id": "r1", "state": "PREVIEW", "phase": "preview", "moves": 1,
                 "preview": self.PREVIEW, "target": {"kind": "time", "time": "2026-11-30T00:10:00Z"},
                 "phases": [{"phase": "preview", "move": 0, "duration_ms": 5},
                            {"phase": "replaying", "move": 1, "duration_ms": 7}]}
        http, shown, err = self.move(["--time", "2026-11-30T00:10:00Z", "--wait"], moved)
        self.assertIn(("POST", f"/instances/{INST}/recoveries/r1/move",
                       {"recovery": {"point_in_time": "2026-11-30T00:10:00Z"}}), http.sent)
        self.assertEqual(shown["moves"], 1)
        self.assertEqual(shown["preview"].machine_readable(), self.PREVIEW)
        self.assertIn("replaying (move 1): 7 ms", shown["phases"].human_readable())
        self.assertIn("recovery: PREVIEW at 127.0.0.1:45123", err)

    def test_move_bodies_and_refused_flags(self):
        def body(*argv):
            _, args = parse(recovery.MoveRecovery, [INST, "r1", *argv])
            return recovery.move_body(args)["recovery"]
        self.assertEqual(body("--lsn", "0/5000100", "--timeline", "2"),
                         {"target": {"lsn": "0/5000100"}, "timeline": 2})
        self.assertEqual(body("--xid", "812", "--exclusive"),
                         {"target": {"xid": 812, "inclusive": False}})
        self.assertEqual(body("--restore-point", "pre-v2"), {"target": {"restore_point": "pre-v2"}})
        with self.assertRaises(exceptions.CommandError):
            body("--lsn", "0/1", "--exclusive")
        for argv in ([], ["--time", "2026-11-30T00:10:00Z", "--lsn", "0/1"], ["--latest"]):
            with self.assertRaises(SystemExit), \
                    unittest.mock.patch("sys.stderr", io.StringIO()):
                parse(recovery.MoveRecovery, [INST, "r1", *argv])

    def test_a_move_that_kept_the_old_preview_fails_the_wait(self):
        kept = {"id": "r1", "state": "PREVIEW", "phase": "preview", "moves": 1,
                "preview": self.PREVIEW, "error_code": "target_not_reached",
                "target": {"kind": "time", "time": "2026-11-30T00:05:00Z"}}
        with self.assertRaisesRegex(exceptions.CommandError,
                                    "target_not_reached.*still waits at time 2026-11-30T00:05:00Z"):
            self.move(["--time", "2026-11-30T00:10:00Z", "--wait"], kept)
