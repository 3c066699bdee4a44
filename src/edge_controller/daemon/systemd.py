"""Moved to `edge_controller.common.systemd`: the daemon and every server talk to systemd.

Kept for the importers outside the move (`daemon/run.py`, `tests/daemon`,
`tests/console`); delete once they import `common.systemd`.
"""

from edge_controller.common.systemd import Notifier, watchdog_pings

__all__ = ["Notifier", "watchdog_pings"]
