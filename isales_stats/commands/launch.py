"""How one of our commands starts another as a child process: ``cli_command``.

The demo starts the worker and the API this way, and the tests start every command so. The
child is this interpreter running ``python -m isales_stats``, not ``isales-stats`` from the
PATH: that would be whatever installation the PATH finds first, while this runs the very code
(and virtualenv) of the parent.
"""

from __future__ import annotations

import sys


def cli_command(*arguments: str) -> list[str]:
    """The command line of ``isales-stats ARGUMENTS``, for ``subprocess``."""
    return [sys.executable, "-m", "isales_stats", *arguments]
