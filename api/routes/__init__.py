"""One router per module; a read interface's module is found by its description.

A module here that describes a read interface as ``INTERFACE`` (api/interfaces.py) is served
with its ``router`` without being named anywhere else: adding the module adds the interface.
The other routes (health, callbacks, the live page) are included by api/main.py by name.
"""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter

from isales_stats.api.interfaces import ReadInterface


def read_interface_routers() -> list[APIRouter]:
    """The routers of the read interfaces' modules, in the order of their paths."""
    described: list[tuple[str, APIRouter]] = []
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        interface = getattr(module, "INTERFACE", None)
        if isinstance(interface, ReadInterface):
            described.append((interface.path, module.router))
    return [router for _, router in sorted(described, key=lambda pair: pair[0])]
