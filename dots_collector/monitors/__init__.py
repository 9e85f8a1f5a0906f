"""The five monitors of the seed document, by name.

Each is ``<name>.bpf.c`` beside a small loader module ``<name>.py`` whose
class derives from :class:`.base.Monitor`. Loader modules are imported
only when asked for, so listing names needs no bcc.
"""

from __future__ import annotations

import importlib

from dots_common.limits import MONITORS

from .base import Monitor

__all__ = ["MONITORS", "monitor_class"]


def monitor_class(name: str) -> type[Monitor]:
    """The loader class of monitor ``name``: module ``<name>``, the one
    Monitor subclass whose ``name`` is ``name``."""
    if name not in MONITORS:
        raise ValueError(f"unknown monitor {name!r} (known: {', '.join(MONITORS)})")
    module = importlib.import_module(f"{__name__}.{name}")
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, Monitor) and getattr(value, "name", None) == name:
            return value
    raise ValueError(f"module {module.__name__} defines no monitor {name!r}")
