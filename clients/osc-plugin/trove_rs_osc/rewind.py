"""`openstack database instance rewind set|show|unset`: the instance's rewind window. With one
set, its host keeps a delayed copy that far behind the primary, and `instance recover` to a time
inside the window replays only the gap from it: seconds, whatever the size of the data."""

import time

from osc_lib import exceptions
from osc_lib.command import command

from trove_rs_osc import common

FIELDS = ("window_minutes", "status", "rewindable_from", "rewindable_until", "timeline",
          "disk_bytes", "error", "reported")
POLL_SECS = 1.0


def rewind_path(instance_id):
    return common.instance_path(instance_id, "rewind")


class SetRewind(command.ShowOne):
    """Keep a delayed copy of the instance, <minutes> behind it, for recoveries in seconds"""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance", metavar="<instance>", help="Instance (name or ID)")
        parser.add_argument("--window", metavar="<minutes>", type=int, required=True,
                            help="How far behind the copy stays (1 to 1440 minutes)")
        parser.add_argument("--wait", action="store_true",
                            help="Wait until the copy is READY; fail if it FAILED")
        return parser

    def take_action(self, args):
        inst = common.find_instance(self.app, args.instance)
        path = rewind_path(inst.id)
        body = {"rewind": {"window_minutes": args.window}}
        view = common.put(self.app, path, body)["rewind"]
        while args.wait and view["status"] == "BUILDING":
            time.sleep(POLL_SECS)
            view = common.get(self.app, path)["rewind"]
        if args.wait and view["status"] != "READY":
            raise exceptions.CommandError(
                f"The delayed copy is {view['status']}: {view.get('error')}")
        return common.show(view, FIELDS)


class ShowRewind(command.ShowOne):
    """Show the instance's rewind window and where its delayed copy stands"""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance", metavar="<instance>", help="Instance (name or ID)")
        return parser

    def take_action(self, args):
        inst = common.find_instance(self.app, args.instance)
        return common.show(common.get(self.app, rewind_path(inst.id))["rewind"], FIELDS)


class UnsetRewind(command.ShowOne):
    """Stop keeping the delayed copy (it is removed from the host)"""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("instance", metavar="<instance>", help="Instance (name or ID)")
        return parser

    def take_action(self, args):
        inst = common.find_instance(self.app, args.instance)
        return common.show(common.delete(self.app, rewind_path(inst.id))["rewind"], FIELDS)
