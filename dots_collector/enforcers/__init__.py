"""In-kernel enforcers held by the collector: they carry out what the
policy daemon decided, and decide nothing themselves.

* ``exec_block``: blocked programs killed at exec (by inode in the kernel,
  by identity from user space for copies and modified copies: exec_judge),
  whatever is mapped executable checked (exec_backstop), allow-list mode;
* ``net_block``: connect()/UDP sendmsg() to blocked addresses denied with
  EPERM (cgroup v2 sock_addr programs on the cgroup2 root).

Loader modules are imported only when asked for (they need bcc).
"""

from __future__ import annotations

import importlib

from .base import Enforcer

#: name -> "module:Class"
ENFORCERS: dict[str, str] = {
    "exec": "exec_block:ExecEnforcer",
    "net": "net_block:NetEnforcer",
}


def enforcer_class(name: str) -> type[Enforcer]:
    module, cls = ENFORCERS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)
