"""The policy daemon's one clock, injectable for tests.

* Elapsed time comes from ``CLOCK_BOOTTIME``, which keeps counting during
  suspend (``CLOCK_MONOTONIC`` stops, so a suspend used to shift bedtime
  and the daily reset later until a restart). Neither the wall clock nor a
  time zone can add or remove a child's time.
* The wall clock only says which day it is and where the allowed-hours
  windows fall. :class:`Timeline` re-anchors it on every reading against
  the elapsed time: a wall clock that agrees (within
  ``JUMP_TOLERANCE_SECONDS``, so NTP slewing is followed) is taken as it
  is; one that jumped is not believed, the jump is reported once, and the
  time reckoned from the last good anchor is used until the wall clock
  agrees again.
* Every part of the daemon that asks "what day is it" (grants of extra
  time, screen time, per-app time, rules) reads the same Timeline, so an
  approved grant lands on the day enforcement reads.
* The days are in the daemon's own time zone (its environment, set by
  the administrator); a child's processes running with another ``TZ``
  change nothing here.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol

CLOCK_BOOTTIME = getattr(time, "CLOCK_BOOTTIME", 7)

#: a wall clock further than this from the elapsed-time reckoning has been set
JUMP_TOLERANCE_SECONDS = 120.0


class Clock(Protocol):
    def boottime(self) -> float: ...
    def now(self) -> dt.datetime: ...


class SystemClock:
    def boottime(self) -> float:
        """Seconds since boot, suspend included."""
        return time.clock_gettime(CLOCK_BOOTTIME)

    def now(self) -> dt.datetime:
        """The wall clock, aware, in the daemon's local time zone."""
        return dt.datetime.now().astimezone()


def boottime_ns() -> int:
    """The collector's timestamps' clock (records' ``ts_ns``)."""
    return time.clock_gettime_ns(CLOCK_BOOTTIME)


def wall_offset_ns() -> int:
    """Add to a CLOCK_BOOTTIME timestamp to get Unix time, as of now."""
    return time.time_ns() - boottime_ns()


class FakeClock:
    """A clock tests move by hand. ``advance`` is time passing with the
    daemon running; ``suspend`` is time passing with the machine asleep
    (no tick runs; ``monotonic``, which the daemon must not use, stops);
    ``set_wall`` moves the wall clock alone, as setting the date would."""

    def __init__(self, start: dt.datetime) -> None:
        self._boot = 1000.0
        self._mono = 1000.0
        self._wall = start

    def boottime(self) -> float:
        return self._boot

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> dt.datetime:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._boot += seconds
        self._mono += seconds
        self._wall += dt.timedelta(seconds=seconds)

    def suspend(self, seconds: float) -> None:
        self._boot += seconds
        self._wall += dt.timedelta(seconds=seconds)

    def set_wall(self, when: dt.datetime) -> None:
        self._wall = when


class Timeline:
    """"Now" for the whole daemon: the wall clock, checked against the
    elapsed time at every reading (see the module's docstring). Safe to
    read from the family core's threads."""

    def __init__(self, clock: Clock | None = None,
                 tolerance: float = JUMP_TOLERANCE_SECONDS) -> None:
        self.clock = clock or SystemClock()
        self.tolerance = tolerance
        self._anchor: tuple[float, dt.datetime] | None = None
        self._jump: float | None = None  # seen, not yet reported
        self._jumped = False  # the wall clock disagrees now
        self._lock = threading.Lock()

    def boottime(self) -> float:
        return self.clock.boottime()

    def now(self) -> dt.datetime:
        with self._lock:
            boot, wall = self.clock.boottime(), self.clock.now()
            if self._anchor is None:
                self._anchor = (boot, wall)
                return wall
            reckoned = self._anchor[1] + dt.timedelta(seconds=boot - self._anchor[0])
            drift = (wall - reckoned).total_seconds()
            if abs(drift) <= self.tolerance:
                self._anchor = (boot, wall)  # re-anchored: follows slewing
                self._jumped = False
                return wall
            if not self._jumped:
                self._jumped = True
                self._jump = drift
            return reckoned

    def today(self) -> dt.date:
        return self.now().date()

    def take_jump(self) -> float | None:
        """The wall clock's jump (seconds) if one happened since the last
        call: each jump is reported once."""
        with self._lock:
            jump, self._jump = self._jump, None
            return jump
