"""Tracepoint programs attached only while someone watched is there.

Some tracepoints fire for every page or slab allocation on the machine
(memory.bpf.c). Even a program that returns after its uid check costs the
tracepoint's own machinery on every hit: ~30 % on an allocation storm run
by a user nobody watches. While no watched process exists those programs
are detached, and such a storm costs nothing.

The loader pins these programs (``prog_<category>__<event>``), not links
to them (pinning.py); the collector holds the links itself, so a monitor's
go when it goes: a crashed collector leaves them detached (they monitor,
they enforce nothing). The programs are raw tracepoint programs (the
memory monitor's are); attaching takes one BPF link per tracepoint, a
millisecond or so for all of them. An enforcer's gate (the exec
enforcer's open probes: they stop an interpreter opening a blocked
script) pins its links too while they are attached
(``gate_<category>__<event>``), so they keep enforcing while no collector
runs, and a restarted collector finds the gate as it was.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import libbpf
from ..pinning import gated_program_pin

log = logging.getLogger(__name__)


class ProbeGate:
    """``programs``: "category:event" -> program fd (ours to close); raw
    tracepoint programs, or (``raw=False``) tracepoint programs attached
    through a BPF link on the tracepoint's perf event. ``idle`` says in the
    log why they are detached."""

    def __init__(self, programs: dict[str, int], raw: bool = True,
                 idle: str = "nobody watched is running", pin_links: Path | None = None) -> None:
        """``pin_links``: the directory the links are pinned in while attached."""
        self.programs = programs
        self.raw = raw
        self.idle = idle
        self.pin_links = pin_links
        self._links: list[int] = []
        #: times the programs were attached, and detached
        self.opened = 0
        self.closed = 0

    @classmethod
    def pinned(cls, directory: Path, tracepoints: Iterable[str], **kw: Any) -> "ProbeGate":
        """The gate over the programs the loader pinned unattached in
        ``directory`` (pinning.py), closed."""
        programs: dict[str, int] = {}
        try:
            for tracepoint in tracepoints:
                programs[tracepoint] = libbpf.obj_get(directory / gated_program_pin(tracepoint))
        except OSError:
            for fd in programs.values():
                os.close(fd)
            raise
        gate = cls(programs, **kw)
        gate._take_pinned_links()
        return gate

    def _link_pins(self) -> list[Path]:
        assert self.pin_links is not None
        return [self.pin_links / ("gate_" + t.replace(":", "__")) for t in self.programs]

    def _take_pinned_links(self) -> None:
        """Links a collector that crashed left pinned: the gate is open.
        Some but not all of them: they go, and the gate is closed."""
        if self.pin_links is None:
            return
        pins = self._link_pins()
        links = []
        for pin in pins:
            try:
                links.append(libbpf.obj_get(pin))
            except OSError:
                break
        if len(links) == len(pins):
            self._links = links
            log.info("%s still attached (pinned)", ", ".join(self.programs))
            return
        for fd in links:
            os.close(fd)
        self._unpin_links()

    def _unpin_links(self) -> None:
        for pin in self._link_pins():
            pin.unlink(missing_ok=True)

    @property
    def is_open(self) -> bool:
        return bool(self._links)

    def open(self) -> None:
        """Attach every program (all or none)."""
        if self._links or not self.programs:
            return
        links = []
        try:
            for tracepoint, prog_fd in self.programs.items():
                links.append(self._attach(tracepoint, prog_fd))
        except BaseException:
            for fd in links:
                os.close(fd)
            raise
        self._links = links
        self.opened += 1
        if self.pin_links is not None:
            try:
                for fd, pin in zip(links, self._link_pins()):
                    libbpf.obj_pin(fd, pin)
            except OSError as e:  # attached all the same, while we run
                log.error("cannot pin the links of %s: %s", ", ".join(self.programs), e)
        log.info("attached %s", ", ".join(self.programs))

    def close(self) -> None:
        """Detach them (closing a link that is not pinned detaches it)."""
        if not self._links:
            return
        if self.pin_links is not None:
            self._unpin_links()
        for fd in self._links:
            os.close(fd)
        self._links = []
        self.closed += 1
        log.info("detached %s: %s", ", ".join(self.programs), self.idle)

    def _attach(self, tracepoint: str, prog_fd: int) -> int:
        category, name = tracepoint.split(":")
        if self.raw:
            return libbpf.raw_tracepoint_open(name, prog_fd)
        event = libbpf.tracepoint_event(category, name)
        try:
            return libbpf.link_create(prog_fd, event, libbpf.BPF_PERF_EVENT)
        finally:
            os.close(event)  # the link holds the event

    def release(self) -> None:
        """Detach and close the programs (the object is closing)."""
        self.close()
        for fd in self.programs.values():
            os.close(fd)
        self.programs = {}
