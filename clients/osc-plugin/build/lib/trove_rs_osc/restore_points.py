"""`openstack database restore-point create|list`: named positions in an instance's WAL that
`instance recover --restore-point <name>` can stop at."""

import time

from osc_lib import exceptions
from osc_lib.command import command

from trove_rs_osc import common

FIELDS = ("id", "name", "status", "lsn", "timeline", "time", "created", "error")
POLL_SECS = 0.5


class CreateRestorePoint(command.ShowOne):
    """Create a restore point on a running instance"""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance", metavar="<instance>", help="Instance (name or ID)")
        parser.add_argument("name", metavar="<name>",
                            help="1 to 63 of A-Z a-z 0-9 _ . -, starting with a letter or digit")
        parser.add_argument("--wait", action="store_true",
                            help="Wait until the point is written (COMPLETED); fail if it fails")
        return parser

    def take_action(self, args):
        inst = common.find_instance(self.app, args.instance)
        path = common.instance_path(inst.id, "restore-points")
        point = common.post(self.app, path, {"restore_point": {"name": args.name}})["restore_point"]
        while args.wait and point["status"] == "NEW":
            time.sleep(POLL_SECS)
            listed = common.get(self.app, path)["restore_points"]
            point = next((p for p in listed if p["id"] == point["id"]), point)
        if args.wait and point["status"] != "COMPLETED":
            raise exceptions.CommandError(
                f"Restore point {args.name} {point['status']}: {point.get('error')}")
        return common.show(point, FIELDS)


class ListRestorePoints(command.Lister):
    """List an instance's restore points, oldest first"""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance", metavar="<instance>", help="Instance (name or ID)")
        return parser

    def take_action(self, args):
        inst = common.find_instance(self.app, args.instance)
        points = common.get(self.app, common.instance_path(inst.id, "restore-points"))
        cols = ("ID", "Name", "Status", "LSN", "Timeline", "Time", "Created", "Error")
        return cols, [tuple(p.get(f) for f in FIELDS) for p in points["restore_points"]]
