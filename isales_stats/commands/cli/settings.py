"""How every command reads its settings: warned about what is misspelled, stopped by what is
malformed with one line per variable (core/settings_check.py), never a pydantic report."""

from __future__ import annotations

import os
import sys

from pydantic import ValidationError

from isales_stats.core.settings import Settings, get_settings
from isales_stats.core.settings_check import (
    environment_names,
    invalid_settings,
    misspelled_settings,
)


def read_settings() -> Settings | None:
    """The process's settings, after a warning on stderr for each ``ISALES_*`` variable that
    is no setting; None, after a line on stderr for each malformed one, when they do not
    parse."""
    for warning in misspelled_settings(environment_names(os.environ)):
        print(f"isales-stats: warning: {warning}", file=sys.stderr)
    try:
        return get_settings()
    except ValidationError as error:
        for line in invalid_settings(error):
            print(f"isales-stats: {line}", file=sys.stderr)
        return None
