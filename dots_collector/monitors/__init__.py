"""The five monitors of the seed document, by name.

Each is ``<name>.bpf.c`` beside a small loader module ``<name>.py`` whose
class derives from :class:`.base.Monitor`. Loader modules are imported
only when asked for, so listing names needs no bcc.
"""

from __future__ import annotations

import importlib

from .base import Monitor

#: name -> "module:Class", in the seed's order
MONITORS: dict[str, str] = {
    "process": "process:ProcessMonitor",
    "filesystem": "filesystem:FilesystemMonitor",
    "network": "network:NetworkMonitor",
    "memory": "memory:MemoryMonitor",
    "disk": "disk:DiskMonitor",
}


def monitor_class(name: str) -> type[Monitor]:
    if name not in MONITORS:
        raise ValueError(f"unknown monitor {name!r} (known: {', '.join(MONITORS)})")
    module, cls = MONITORS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
