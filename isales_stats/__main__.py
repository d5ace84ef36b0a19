"""``python -m isales_stats``: the command line, as the ``isales-stats`` script runs it."""

import sys

from isales_stats.commands.cli import main

sys.exit(main())
