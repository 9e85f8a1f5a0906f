"""The screen-time loop: every few seconds read the children's sessions,
let the screen-time engine decide, and carry its actions out — signals
for the desktop, logind calls to lock or end sessions, or (with no logind
on the machine) the children's processes killed through the collector."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .screentime import EndSessions, LimitReached, ScreenTime, TimeWarning, WallClockJump
from .sessions import Logind, LogindError, proc_sessions

log = logging.getLogger("dots.policyd.timekeeper")

TICK_SECONDS = 5.0

Emit = Callable[..., None]                   # emit(signal_name, *args)
KillUser = Callable[[int], Awaitable[None]]  # through the collector


class Timekeeper:
    def __init__(self, engine: ScreenTime, logind: Logind, emit: Emit, kill_user: KillUser,
                 tamper: Callable[[str, str], None]) -> None:
        self.engine = engine
        self.logind = logind
        self.emit = emit
        self.kill_user = kill_user
        self.tamper = tamper

    async def tick(self) -> None:
        uids = list(self.engine.policies())
        use_logind = await self._logind_available()
        sessions = await self.logind.sessions(uids) if use_logind else proc_sessions(uids)
        for action in self.engine.tick(sessions):
            await self._carry_out(action, use_logind)

    async def _logind_available(self) -> bool:
        try:
            return await self.logind.available()
        except LogindError:
            return False

    async def _carry_out(self, action, use_logind: bool) -> None:
        if isinstance(action, TimeWarning):
            self.emit("TimeWarning", action.uid, action.minutes_left)
        elif isinstance(action, LimitReached):
            self.emit("LimitReached", action.uid, action.reason)
        elif isinstance(action, WallClockJump):
            self.tamper("clock", f"wall clock moved {action.seconds:+.0f} s against the monotonic clock")
        elif isinstance(action, EndSessions):
            if not use_logind:
                log.info("uid %d: no logind; killing its processes", action.uid)
                await self.kill_user(action.uid)
                return
            for session_id in action.session_ids:
                try:
                    if action.action == "lock":
                        await self.logind.lock(session_id)
                    else:
                        await self.logind.terminate(session_id)
                    log.info("uid %d: %s session %s", action.uid, action.action, session_id)
                except LogindError as e:
                    log.warning("cannot %s session %s: %s", action.action, session_id, e)

    async def run(self, interval: float = TICK_SECONDS) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("screen-time tick failed")
            await asyncio.sleep(interval)
