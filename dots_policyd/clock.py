"""Clocks the policy daemon's time accounting runs on, injectable for tests.

Durations come from the monotonic clock, so setting the wall clock or the
time zone can neither add nor remove a child's time; the wall clock only
says which day (and which allowed-hours window) it is."""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def now(self) -> dt.datetime: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> dt.datetime:
        return dt.datetime.now().astimezone()


class FakeClock:
    """A clock tests move by hand; ``set_wall`` moves the wall clock alone,
    as a child changing the date would."""

    def __init__(self, start: dt.datetime) -> None:
        self._mono = 1000.0
        self._wall = start

    def monotonic(self) -> float:
        return self._mono

    def now(self) -> dt.datetime:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall += dt.timedelta(seconds=seconds)

    def set_wall(self, when: dt.datetime) -> None:
        self._wall = when
