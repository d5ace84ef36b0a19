"""Exit statuses of the producer commands (``publish``, ``simulate``), as scripts test them.

Three, not one per failure: a script needs to know whether to retry the rejects (1) or to fix
its input, options or Kafka first (2).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_SOME_NOT_SENT = 1  # rejected or failed events (publish); failed sends (simulate)
EXIT_CANNOT_START = 2  # unreadable input, Kafka unreachable, bad options
