"""The BPF objects a configuration asks for, made in one place: the loader
(loader.py) builds and pins exactly what the collector (core.py) then
opens, so both must construct them alike."""

from __future__ import annotations

from typing import Any

from .bpfobject import BpfObject
from .config import CollectorConfig
from .monitors import monitor_class


def bpf_objects(config: CollectorConfig, cache: Any = None) -> list[BpfObject]:
    """Enforcers first (they hold no rules yet, so their ring buffers stay
    empty while the monitors' fill), then the monitors; none loaded."""
    out: list[BpfObject] = []
    if config.enforcers:
        from .enforcers.exec_block import ExecEnforcer
        from .enforcers.net_block import NetEnforcer

        out += [ExecEnforcer(cache=cache), NetEnforcer()]
    for name in config.monitors:
        cls = monitor_class(name)
        out.append(cls(kib_per_cpu=config.ringbuf_kib_per_cpu, **cls.options(config)))
    return out
