"""trove-rs's `openstack database` commands: recover an instance in place and follow it, read its
recovery history and recoverable window, manage restore points, and list the transactions of a
time span (to find the one to undo).

The commands plug into python-openstackclient through the `openstack.database.v1` entry points,
beside python-troveclient's own, and talk to the API through the client troveclient builds for
them (`client_manager.database`).
"""

__version__ = "0.1.0"
