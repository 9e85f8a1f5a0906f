"""The screen-time loop: every few seconds read the children's sessions and
what the kernel saw them do, let the screen-time engine decide, and carry
its actions out — signals for the desktop, logind calls to lock or end
sessions, or (with no logind on the machine, or a logind that fails) the
children's processes killed through the collector.

Fail closed: a logind that does not answer is not a reason to stop
counting or enforcing. Its failure is reported once per episode
(``tamper("logind", ...)``), the sessions are taken from /proc meanwhile,
and a session that cannot be locked or ended is ended by killing the
child's processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from .activity import Activity
from .screentime import (EndSessions, LimitReached, ScreenTime, SessionState, StorageFailing,
                         TimeWarning, WallClockJump)
from .sessions import (LINGER_DIR, PROC_SESSION, Logind, LogindError, lingering, proc_sessions,
                       without_session)

log = logging.getLogger("dots.policyd.timekeeper")

TICK_SECONDS = 5.0

Emit = Callable[..., None]                   # emit(signal_name, *args)
KillUser = Callable[[int], Awaitable[None]]  # through the collector


class Timekeeper:
    def __init__(self, engine: ScreenTime, logind: Logind, emit: Emit, kill_user: KillUser,
                 tamper: Callable[[str, str], None], activity: Activity | None = None,
                 linger_dir: str = LINGER_DIR) -> None:
        self.engine = engine
        self.logind = logind
        self.emit = emit
        self.kill_user = kill_user
        self.tamper = tamper
        self.activity = activity or Activity()
        self.logind_failures = 0  # calls that failed, since the start
        self.storage_failing = False
        self._logind_failing: set[str] = set()  # the calls failing now
        self.linger_dir = linger_dir
        self._lingering_reported: set[int] = set()

    async def tick(self) -> None:
        uids = list(self.engine.policies())
        use_logind = await self._logind_available()
        sessions: list[SessionState] | None = None
        if use_logind:
            try:
                sessions = await self.logind.sessions(uids)
                self._logind_ok("list")
            except LogindError as e:
                self._logind_failed("list", f"cannot list the sessions: {e}")
                use_logind = False
        if sessions is None:
            sessions = proc_sessions(uids)
        else:
            sessions += without_session(sessions, uids)
            await self._undo_lingering(uids)
        active = self.activity.active_since_last(uids)
        for action in self.engine.tick(sessions, active):
            await self._carry_out(action, use_logind)

    async def _logind_available(self) -> bool:
        try:
            return await self.logind.available()
        except LogindError:
            return False

    def _logind_failed(self, call: str, detail: str) -> None:
        """Reported once per episode: from the first failure until every
        failing call succeeded again."""
        self.logind_failures += 1
        if not self._logind_failing:
            self.tamper("logind", f"{detail}; enforcing without it")
        self._logind_failing.add(call)

    def _logind_ok(self, call: str) -> None:
        if call in self._logind_failing:
            self._logind_failing.discard(call)
            log.warning("logind answers %s again", call)

    async def _carry_out(self, action, use_logind: bool) -> None:
        if isinstance(action, TimeWarning):
            self.emit("TimeWarning", action.uid, action.minutes_left)
        elif isinstance(action, LimitReached):
            self.emit("LimitReached", action.uid, action.reason)
        elif isinstance(action, WallClockJump):
            self.tamper("clock", f"wall clock moved {action.seconds:+.0f} s against the elapsed time")
        elif isinstance(action, StorageFailing):
            self.storage_failing = action.failing
            if action.failing:
                self.tamper("storage", f"screen time cannot be written ({action.detail}); "
                                       "enforcing from memory")
        elif isinstance(action, EndSessions):
            await self._end(action, use_logind)

    async def _undo_lingering(self, uids: list[int]) -> None:
        """A child's user manager must not linger: undone through logind,
        reported once (until it stops lingering)."""
        now = set(lingering(uids, self.linger_dir))
        self._lingering_reported &= now
        for uid in sorted(now):
            try:
                await self.logind.stop_lingering(uid)
                undone = "undone"
            except LogindError as e:
                undone = f"could not be undone ({e}); its processes outside sessions are " \
                         "stopped at the end of its time"
            if uid not in self._lingering_reported:
                self._lingering_reported.add(uid)
                self.tamper("linger", f"uid {uid} was set to linger (processes without a "
                                      f"session); {undone}")

    async def _end(self, action: EndSessions, use_logind: bool) -> None:
        if not use_logind or any(s.startswith(PROC_SESSION) for s in action.session_ids):
            log.info("uid %d: %s; killing its processes", action.uid,
                     "processes outside any session" if use_logind else "no logind")
            await self.kill_user(action.uid)
            return
        for session_id in action.session_ids:
            try:
                if action.action == "lock":
                    await self.logind.lock(session_id)
                else:
                    await self.logind.terminate(session_id)
                self._logind_ok(action.action)
                log.info("uid %d: %s session %s", action.uid, action.action, session_id)
            except LogindError as e:
                self._logind_failed(action.action, f"cannot {action.action} session {session_id}: {e}")
                log.warning("uid %d: cannot %s session %s; killing its processes",
                            action.uid, action.action, session_id)
                await self.kill_user(action.uid)
                return

    async def run(self, interval: float = TICK_SECONDS) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("screen-time tick failed")
            await asyncio.sleep(interval)
