"""Following a recovery in place to its end (`instance recover --wait`, `recovery confirm|cancel
--wait`).

Polls the instance (`GET /instances/{id}`): while its `recovery` key names this recovery, one line
on stderr shows the phase, a bar of the bytes fetched (`fetching`, `verifying`) or of the WAL
replayed since the first poll of `replaying`, and the time left in the phase. Once the key is
gone, the recovery's record (`…/recoveries/{rid}`) tells how it ended: as wanted (COMPLETED, or
CANCELLED for a cancel; the wait then lasts until the instance is ACTIVE again) or failed (the
instance's fault says why). A preview ends the wait of `instance recover --preview --wait` once
it is ready (state PREVIEW). On a terminal the line is redrawn in place; otherwise each new line
is printed once.
"""

import sys
import time

from osc_lib import exceptions

from trove_rs_osc import common

POLL_SECS = 0.5
BAR_WIDTH = 20


def lsn(text):
    """A WAL position `X/Y` as a number."""
    hi, lo = text.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def mib(n):
    return f"{n / 1048576:.1f} MiB"


def duration(secs):
    secs = int(secs)
    return f"{secs} s" if secs < 60 else f"{secs // 60} min {secs % 60:02d} s"


def bar(done, total):
    frac = 1.0 if total <= 0 else min(max(done / total, 0.0), 1.0)
    filled = round(frac * BAR_WIDTH)
    return f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {frac * 100:3.0f}%"


class Line:
    """The progress line: what a poll shows, drawn on `out`."""

    def __init__(self, out):
        self.out = out
        self.tty = out.isatty()
        self.last = None
        self.replay_from = None  # the first replayed LSN seen: where the replay bar starts

    def describe(self, rec):
        phase = rec.get("phase") or "?"
        p = rec.get("progress") or {}
        text = f"recovery: {phase}"
        goal = p.get("target_lsn") or p.get("store_end_lsn")
        if phase == "replaying" and p.get("replayed_lsn") and goal:
            at = lsn(p["replayed_lsn"])
            if self.replay_from is None:
                self.replay_from = at
            text += (f" {bar(at - self.replay_from, lsn(goal) - self.replay_from)}"
                     f" replayed {p['replayed_lsn']} of {goal}")
        elif phase in ("fetching", "verifying") and p.get("bytes_total"):
            done = p.get("bytes_done") or 0
            text += f" {bar(done, p['bytes_total'])} {mib(done)} of {mib(p['bytes_total'])}"
        if p.get("time_left_secs") is not None:
            text += f", {duration(p['time_left_secs'])} left"
        return text

    def draw(self, text):
        if text == self.last:
            return
        if self.tty:
            self.out.write(f"\r{text}\x1b[K")
        else:
            self.out.write(text + "\n")
        self.out.flush()
        self.last = text

    def end(self, text):
        self.draw(text)
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def preview_summary(preview):
    """Where a waiting preview listens: `127.0.0.1:45123 until 2026-…`."""
    return f"{preview.get('address')}:{preview.get('port')} until {preview.get('expires_at')}"


def wait(app, instance_id, recovery_id, fault_before=None, out=None, sleep=time.sleep,
         until="COMPLETED"):
    """Polls until recovery `recovery_id` of the instance ends in `until`: COMPLETED or
    CANCELLED (returns the instance once it is ACTIVE again), or PREVIEW (returns the recovery's
    record once the preview is ready). Raises CommandError with the fault if it ended otherwise."""
    line = Line(out or sys.stderr)
    while True:
        inst = common.get(app, common.instance_path(instance_id))["instance"]
        running = inst.get("recovery")
        if running and running.get("id") == recovery_id and running.get("state") != "PREVIEW":
            line.draw(line.describe(running))
            sleep(POLL_SECS)
            continue
        record = common.get(app, common.instance_path(instance_id, "recoveries", recovery_id))["recovery"]
        state = record.get("state")
        if state in ("NEW", "RUNNING"):  # accepted, not on the instance view yet
            line.draw(line.describe(record))
            sleep(POLL_SECS)
            continue
        if state == "PREVIEW" and until == "PREVIEW":
            line.end("recovery: PREVIEW at " + preview_summary(record.get("preview") or {}))
            return record
        fault = inst.get("fault")
        new_fault = fault if fault and fault != fault_before else None
        if state != until or new_fault or inst.get("status") == "ERROR":
            line.end(f"recovery: {state} in phase {record.get('phase')}")
            raise exceptions.CommandError((new_fault or {}).get("message") or (
                f"Recovery {recovery_id} {state} in phase {record.get('phase')}"
                f" (error code {record.get('error_code')}); instance status {inst.get('status')}"))
        if inst.get("status") == "ACTIVE":
            took = record.get("duration_ms")
            downtime = (record.get("outcome") or {}).get("downtime_ms")
            line.end(f"recovery: {state}" + (f" in {took / 1000:.1f} s" if took is not None else "")
                     + (f", {downtime} ms of downtime" if downtime is not None else ""))
            return inst
        line.draw(f"recovery: {state}, waiting for the instance ({inst.get('status')}) to be ACTIVE")
        sleep(POLL_SECS)
