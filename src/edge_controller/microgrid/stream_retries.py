"""Moved to `edge_controller.common.stream_retries`: the logging set-up uses it too.

Kept for the importers outside the move (`microgrid/connection.py`,
`tests/microgrid/test_stream_retries.py`); delete once they import `common.stream_retries`.
"""

from edge_controller.common.stream_retries import Recovered, Retrying, RetryLog

__all__ = ["Recovered", "RetryLog", "Retrying"]
