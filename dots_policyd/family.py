"""The policy core behind ``org.dots.Family1``: one method per operation.

No D-Bus here: the dispatcher authorizes the caller and hands over the
caller's uid (``actor``); this module validates the arguments, changes the
database inside ONE transaction per operation, writes an audit row for
every parent action (who, what, old and new value) and a policy version
for every policy change, and tells subscribers what changed only after the
transaction committed. Errors are the named errors of
:mod:`dots_policyd.errors`; bad input never changes anything.

The clock is injectable so that status and day boundaries are testable.
"""

# Longer than the ~400 lines a module is meant to have, on purpose: this is
# the whole policy core behind org.dots.Family1, one method per operation,
# each built on the same transaction/audit/event discipline (_changes); the
# web filter's and the household's operations live in their own modules.

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import pwd
import re
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import peewee

from dots_common.limits import MAX_UID, MIN_CHILD_UID, NOBODY_UID

from . import history
from .db import bind, storage_errors
from .errors import (
    AlreadyAnswered,
    AlreadyExists,
    InvalidArgument,
    InvalidPolicy,
    StalePolicy,
    NotFound,
    TooManyRequests,
    UnknownChild,
)
from .policy import (
    MAX_DOCUMENT_BYTES,
    MINUTES_PER_DAY,
    Policy,
    PolicyError,
    block_app,
    block_site,
    disallow_app,
    expand_days,
    normalize_app,
    normalize_site,
    policy_json_schema,
    set_allow_list,
    set_allowed_hours,
    set_app_limit,
    set_daily_limit,
    set_weekly_limit,
    short_repr,
    unblock_app,
    unblock_site,
)
from .apps import Apps
from .presets import list_presets, preset_policy
from .schema import Child, PolicyVersion, TimeRequest
from .seal import Seal
from .timeleft import Usage, time_left

log = logging.getLogger(__name__)

MAX_USER_ARG = 256
MAX_PRESET_ARG = 32
MAX_DAYS_ARG = 64
MAX_WINDOWS_ARG = 64
MAX_REQUEST_MINUTES = 720
MAX_GRANT_MINUTES = MINUTES_PER_DAY
MAX_REASON = 500
MAX_PENDING_REQUESTS = 5
MAX_LISTED_REQUESTS = 1000
AUDIT_REPLY_BYTES = 16 * 1024 * 1024
WINDOW_LOOKAHEAD_DAYS = 7
REQUEST_STATES = ("pending", "approved", "denied")

Clock = Callable[[], dt.datetime]
T = TypeVar("T")


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --- results and events -----------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class ChildInfo:
    uid: int
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class ChildStatus:
    uid: int
    name: str
    day: dt.date
    limit_seconds: int | None
    used_seconds: int
    granted_seconds: int
    weekly_limit_seconds: int | None
    weekly_used_seconds: int
    left_seconds: int | None  # None = unlimited
    in_window: bool
    window_start: dt.datetime | None  # aware
    window_end: dt.datetime | None
    blocked_reason: str  # "" | "daily" | "weekly" | "hours"
    pending_requests: int

    @property
    def blocked(self) -> bool:
        return bool(self.blocked_reason)


@dataclasses.dataclass(frozen=True, slots=True)
class UsageReport:
    apps: list[history.AppUsage]
    sites: list[history.SiteUsage]
    days: list[history.DayUsage]


@dataclasses.dataclass(frozen=True, slots=True)
class RequestInfo:
    id: int
    uid: int
    name: str
    minutes: int
    reason: str
    state: str
    granted_minutes: int | None
    answered_by: int | None
    created: dt.datetime  # naive UTC
    answered: dt.datetime | None


@dataclasses.dataclass(frozen=True, slots=True)
class ChildAdded:
    uid: int
    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class ChildRemoved:
    uid: int


@dataclasses.dataclass(frozen=True, slots=True)
class PolicyChanged:
    uid: int
    version: int


@dataclasses.dataclass(frozen=True, slots=True)
class RequestCreated:
    id: int
    uid: int
    minutes: int


@dataclasses.dataclass(frozen=True, slots=True)
class RequestAnswered:
    id: int
    uid: int
    approved: bool
    minutes: int


Event = ChildAdded | ChildRemoved | PolicyChanged | RequestCreated | RequestAnswered
Listener = Callable[[Event], None]


# --- argument checks ------------------------------------------------------------------

_UID_RE = re.compile(r"[0-9]{1,10}")


def _text(value: str, what: str, most: int, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string")
    if len(value) > most:
        raise InvalidArgument(f"{what} is longer than {most} characters")
    if not value and not empty:
        raise InvalidArgument(f"{what} is empty")
    return value


def _whole(value: int, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidArgument(f"{what} must be {low} to {high}, got {short_repr(value)}")
    return value


def _parse_day(text: str, what: str) -> dt.date:
    _text(text, what, 10)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"{what} {short_repr(text)} is not a date YYYY-MM-DD") from None


@contextlib.contextmanager
def _argument_errors() -> Iterator[None]:
    """history's ValueErrors are about the caller's arguments."""
    try:
        yield
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def _policy_argument(fn: Callable[[T], T], value: T) -> T:
    try:
        return fn(value)
    except PolicyError as exc:
        raise InvalidArgument(str(exc)) from None


# --- the core -------------------------------------------------------------------------

class Family:
    """Children, their policies, time requests, reports and the audit log."""

    def __init__(self, db: peewee.Database, clock: Clock = system_clock,
                 tz: dt.tzinfo | None = None, seal: Seal | None = None) -> None:
        """``clock`` returns an aware datetime; days and allowed hours are
        local to ``tz`` (None: the system's local time zone). ``seal`` is
        rewritten inside every change's transaction."""
        self.db = bind(db)
        self.clock = clock
        self.tz = tz
        self.seal = seal
        self._listeners: list[Listener] = []
        #: household mode: where used/granted seconds come from (all machines)
        self.usage = None

    # --- plumbing -------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event)`` after each committed change, in the
        thread that made it."""
        self._listeners.append(listener)

    def _notify(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a broken subscriber must not undo a committed change
                log.exception("listener %r failed on %r", listener, event)

    @contextlib.contextmanager
    def _changes(self, action: str) -> Iterator[list[Event]]:
        """One transaction; its events are published once it committed."""
        events: list[Event] = []
        with storage_errors(f"cannot {action}"):
            bind(self.db)
            with self.db.atomic():
                yield events
                if self.seal is not None:
                    self.seal.write()
        for event in events:
            self._notify(event)

    def _reading(self, action: str) -> contextlib.AbstractContextManager[None]:
        bind(self.db)
        return storage_errors(f"cannot {action}")

    def _now(self) -> dt.datetime:
        """Now, aware, in the children's time zone."""
        return self.clock().astimezone(self.tz)

    def _utc_now(self) -> dt.datetime:
        return self.clock().astimezone(dt.timezone.utc).replace(tzinfo=None)

    def _at(self, day: dt.date, minute: int) -> dt.datetime:
        """The aware local time ``minute`` minutes after ``day``'s midnight."""
        naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minute)
        return naive.astimezone() if self.tz is None else naive.replace(tzinfo=self.tz)

    def _audit(self, actor: int, action: str, target: str, old: str | None, new: str | None) -> None:
        history.append_audit(self.db, actor, action, target, old, new)

    # --- users and children -----------------------------------------------------------

    @staticmethod
    def _account(user: str) -> pwd.struct_passwd:
        """The local account named ``user`` (or with decimal uid ``user``)."""
        text = _text(user, "user", MAX_USER_ARG)
        try:
            if _UID_RE.fullmatch(text):
                return pwd.getpwuid(_whole(int(text), "uid", 0, MAX_UID))
            return pwd.getpwnam(text)
        except KeyError:
            raise InvalidArgument(f"no local account {short_repr(text)}") from None

    def lookup_uid(self, user: str) -> int:
        """uid of a user name or decimal uid (a registered child's stored
        name counts too); :class:`UnknownChild` when there is none."""
        text = _text(user, "child", MAX_USER_ARG)
        if _UID_RE.fullmatch(text):
            return _whole(int(text), "uid", 0, MAX_UID)
        try:
            return pwd.getpwnam(text).pw_uid
        except KeyError:
            pass
        with self._reading("look up a child"):
            row = Child.get_or_none(Child.name == text)
        if row is None:
            raise UnknownChild(f"{short_repr(text)} is not a registered child")
        return row.uid

    def _child(self, uid: int) -> Child:
        row = Child.get_or_none(Child.uid == uid)
        if row is None:
            raise UnknownChild(f"uid {uid} is not a registered child")
        return row

    def child_uid(self, child: str) -> int:
        """uid of a registered child given by name or uid."""
        uid = self.lookup_uid(child)
        with self._reading("look up a child"):
            self._child(uid)
        return uid

    def child_uids(self) -> list[int]:
        with self._reading("list children"):
            return [uid for (uid,) in Child.select(Child.uid).order_by(Child.uid).tuples()]

    def list_children(self) -> list[ChildInfo]:
        with self._reading("list children"):
            return [ChildInfo(uid, name) for uid, name in
                    Child.select(Child.uid, Child.name).order_by(Child.uid).tuples()]

    @staticmethod
    def presets() -> list[tuple[str, str]]:
        return [(p.name, p.description) for p in list_presets()]

    @staticmethod
    def policy_schema() -> str:
        return policy_json_schema()

    def add_child(self, actor: int, user: str, preset: str) -> ChildInfo:
        account = self._account(user)
        if account.pw_uid < MIN_CHILD_UID or account.pw_uid == NOBODY_UID:
            raise InvalidArgument(f"{account.pw_name} is a system account and cannot be a child")
        _text(preset, "preset", MAX_PRESET_ARG, empty=True)
        policy = _policy_argument(preset_policy, preset) if preset else Policy()
        uid, name, text = account.pw_uid, account.pw_name, policy.to_json()
        with self._changes("add a child") as events:
            if Child.get_or_none(Child.uid == uid) is not None:
                raise AlreadyExists(f"{name} (uid {uid}) is already a child")
            Child.create(uid=uid, name=name, policy=text, created=self._utc_now())
            version = self._new_version(actor, uid, text)
            self._audit(actor, "add_child", f"uid:{uid}", None, text)
            events += [ChildAdded(uid, name), PolicyChanged(uid, version)]
        log.info("uid %d added child %s (uid %d, preset %r)", actor, name, uid, preset)
        return ChildInfo(uid, name)

    def remove_child(self, actor: int, child: str) -> None:
        uid = self.lookup_uid(child)
        with self._changes("remove a child") as events:
            row = self._child(uid)
            Child.delete().where(Child.uid == uid).execute()
            self._audit(actor, "remove_child", f"uid:{uid}", row.policy, None)
            events.append(ChildRemoved(uid))
        log.info("uid %d removed child uid %d", actor, uid)

    # --- policies ---------------------------------------------------------------------

    def version_of(self, uid: int) -> int:
        """The child's latest policy version (0: none)."""
        return PolicyVersion.select(peewee.fn.MAX(PolicyVersion.version)).where(
            PolicyVersion.uid == uid).scalar() or 0

    def _new_version(self, actor: int, uid: int, text: str) -> int:
        version = self.version_of(uid) + 1
        PolicyVersion.create(uid=uid, version=version, policy=text, author_uid=actor,
                             time=self._utc_now())
        return version

    def get_policy(self, child: str) -> str:
        uid = self.lookup_uid(child)
        with self._reading("read a policy"):
            return self._child(uid).policy

    def get_versioned_policy(self, child: str) -> tuple[int, str]:
        """The policy and its version, read together (for ReplacePolicy)."""
        uid = self.lookup_uid(child)
        with self._reading("read a policy"):
            with self.db.atomic():
                return self.version_of(uid), self._child(uid).policy

    def _change_policy(self, actor: int, child: str, action: str,
                       change: Callable[[Policy], Policy], base_version: int | None = None) -> int:
        """Apply ``change`` to the child's policy: a new version when it
        changed anything; an audit row in any case. With ``base_version``,
        a policy that is no longer at that version is refused (StalePolicy):
        the edit was made on a copy someone else changed meanwhile."""
        uid = self.lookup_uid(child)
        with self._changes(action.replace("_", " ")) as events:
            row = self._child(uid)
            if base_version is not None and base_version != (current := self.version_of(uid)):
                raise StalePolicy(f"the policy is at version {current}, not {base_version}: "
                                  "someone changed it meanwhile; read it again and redo the edit")
            try:
                new = change(Policy.from_json(row.policy))
            except PolicyError as exc:
                raise InvalidPolicy(str(exc)) from None
            text = new.to_json()
            if len(text.encode()) > MAX_DOCUMENT_BYTES:
                raise InvalidPolicy(f"the policy would be larger than {MAX_DOCUMENT_BYTES} bytes")
            self._audit(actor, action, f"uid:{uid}", row.policy, text)
            if text == row.policy:
                return self.version_of(uid)
            Child.update(policy=text).where(Child.uid == uid).execute()
            version = self._new_version(actor, uid, text)
            events.append(PolicyChanged(uid, version))
        log.info("uid %d: %s of uid %d, policy version %d", actor, action, uid, version)
        return version

    def set_policy(self, actor: int, child: str, document: str,
                   base_version: int | None = None) -> int:
        """Replace the whole policy; with ``base_version`` (ReplacePolicy),
        only if nobody changed it since that version."""
        if base_version is not None:
            _whole(base_version, "version", 0, 2**32 - 1)
        if not isinstance(document, str):
            raise InvalidArgument("policy must be a JSON string")
        try:
            policy = Policy.from_json(document)
        except PolicyError as exc:
            raise InvalidPolicy(str(exc)) from None
        return self._change_policy(actor, child, "set_policy", lambda _old: policy, base_version)

    def replace_policy(self, actor: int, child: str, base_version: int, document: str) -> int:
        """SetPolicy that refuses to overwrite a change made since ``base_version``."""
        return self.set_policy(actor, child, document, base_version)

    def set_weekly_limit(self, actor: int, child: str, minutes: int) -> int:
        """Minutes per week (Monday to Sunday); -1 = none."""
        limit = None if minutes == -1 else _whole(minutes, "minutes", 0, 7 * MINUTES_PER_DAY)
        return self._change_policy(actor, child, "set_weekly_limit",
                                   lambda p: set_weekly_limit(p, limit))

    def set_app_limit(self, actor: int, child: str, app: str, minutes: int) -> int:
        """Daily minutes for one app; -1 removes its limit (NotFound if it had none)."""
        name = _policy_argument(normalize_app, app)
        limit = None if minutes == -1 else _whole(minutes, "minutes", 0, MINUTES_PER_DAY)

        def change(p: Policy) -> Policy:
            if limit is None and name not in p.app_limits_minutes:
                raise NotFound(f"{child} has no daily limit for {name}")
            return set_app_limit(p, name, limit)
        return self._change_policy(actor, child, "set_app_limit", change)

    def set_allow_list(self, actor: int, child: str, enabled: bool, apps: Sequence[str]) -> int:
        """Allow-list mode on or off, adding ``apps`` to the allowed programs."""
        if not isinstance(enabled, bool):
            raise InvalidArgument("enabled must be a boolean")
        if len(apps) > MAX_WINDOWS_ARG:
            raise InvalidArgument(f"give at most {MAX_WINDOWS_ARG} apps at once")
        names = [_policy_argument(normalize_app, a) for a in apps]
        return self._change_policy(actor, child, "set_allow_list",
                                   lambda p: set_allow_list(p, enabled, names))

    def disallow_app(self, actor: int, child: str, app: str) -> int:
        name = _policy_argument(normalize_app, app)
        return self._change_policy(actor, child, "disallow_app", lambda p: disallow_app(p, name))

    def clear_allowed_hours(self, actor: int, child: str, days: Sequence[str]) -> int:
        """Lift the allowed-hours restriction of ``days`` (any time again)."""
        if not days or len(days) > MAX_DAYS_ARG:
            raise InvalidArgument(f"give 1 to {MAX_DAYS_ARG} days")
        for day in days:
            _text(day, "day", 16)
        names = _policy_argument(expand_days, days)
        return self._change_policy(actor, child, "clear_allowed_hours",
                                   lambda p: set_allowed_hours(p, names, None))

    def set_daily_limit(self, actor: int, child: str, weekday: int, weekend: int) -> int:
        """Minutes 0..1440 for school days and for the weekend; -1 = none."""
        limits = [None if m == -1 else _whole(m, what, 0, MINUTES_PER_DAY)
                  for m, what in ((weekday, "weekday_minutes"), (weekend, "weekend_minutes"))]
        return self._change_policy(actor, child, "set_daily_limit", lambda p: set_daily_limit(
            set_daily_limit(p, limits[0]), limits[1], weekend=True))

    def set_allowed_hours(self, actor: int, child: str, days: Sequence[str],
                          windows: Sequence[str]) -> int:
        if not days or len(days) > MAX_DAYS_ARG:
            raise InvalidArgument(f"give 1 to {MAX_DAYS_ARG} days")
        if len(windows) > MAX_WINDOWS_ARG:
            raise InvalidArgument(f"give at most {MAX_WINDOWS_ARG} windows")
        for day in days:
            _text(day, "day", 16)
        names = _policy_argument(expand_days, days)
        return self._change_policy(actor, child, "set_allowed_hours",
                                   lambda p: set_allowed_hours(p, names, list(windows)))

    def block_app(self, actor: int, child: str, app: str) -> int:
        """An absolute path is kept even before a program is there (an
        install or upgrade later is still the blocked one); a bare name must
        name a program on this machine, never a rule dropped in silence."""
        name = _policy_argument(normalize_app, app)
        if not name.startswith("/"):
            try:
                Apps().require([name])
            except ValueError as exc:  # dots_identity's UnknownApp: one sentence
                raise InvalidArgument(str(exc)) from None
        return self._change_policy(actor, child, "block_app", lambda p: block_app(p, name))

    def unblock_app(self, actor: int, child: str, app: str) -> int:
        name = _policy_argument(normalize_app, app)
        return self._change_policy(actor, child, "unblock_app", lambda p: unblock_app(p, name))

    def block_site(self, actor: int, child: str, site: str) -> int:
        name = _policy_argument(normalize_site, site)
        return self._change_policy(actor, child, "block_site", lambda p: block_site(p, name))

    def unblock_site(self, actor: int, child: str, site: str) -> int:
        name = _policy_argument(normalize_site, site)
        return self._change_policy(actor, child, "unblock_site", lambda p: unblock_site(p, name))

    # --- status -----------------------------------------------------------------------

    def status(self, uid: int) -> ChildStatus:
        """Today's screen time (ScreenTimeDaily: used, and granted by
        approved requests), what is left, and the allowed window."""
        now = self._now()
        today = now.date()
        monday = today - dt.timedelta(days=today.weekday())
        with self._reading("read a child's status"):
            row = self._child(uid)
            days = history.daily_usage(self.db, uid, monday, today)
            pending = TimeRequest.select().where(
                (TimeRequest.uid == uid) & (TimeRequest.state == "pending")).count()
        policy = Policy.from_json(row.policy)
        used, granted = days[-1].seconds_used, days[-1].seconds_granted
        week_used = sum(d.seconds_used for d in days)
        week_granted = sum(d.seconds_granted for d in days)
        if self.usage is not None:  # household mode: the household's time, all machines
            used, granted = self.usage.used_and_granted(uid, today, today)
            week_used, week_granted = self.usage.used_and_granted(uid, monday, today)

        limit = policy.daily_limit_for(today)
        weekly = policy.weekly_limit_minutes
        # what is enforced, to the second: the same function screen time uses
        left = time_left(policy, Usage(used, granted, week_used, week_granted), now)
        window = self._window(policy, now)
        in_window = window is not None and window[0] <= now < window[1]
        reason = left.reason if left.blocked else ""
        return ChildStatus(
            uid=uid, name=row.name, day=today,
            limit_seconds=None if limit is None else limit * 60,
            used_seconds=used, granted_seconds=granted,
            weekly_limit_seconds=None if weekly is None else weekly * 60,
            weekly_used_seconds=week_used,
            left_seconds=None if left.seconds is None else max(0, int(left.seconds)),
            in_window=in_window,
            window_start=window[0] if window else None, window_end=window[1] if window else None,
            blocked_reason=reason, pending_requests=pending)

    def _window(self, policy: Policy, now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
        """The allowed window containing ``now``, else the next one within a
        week; a day without restriction is one window 00:00-24:00."""
        today = now.date()
        minute = now.hour * 60 + now.minute
        for offset in range(WINDOW_LOOKAHEAD_DAYS + 1):
            day = today + dt.timedelta(days=offset)
            spans = policy.windows_for(day)
            for start, end in ([(0, MINUTES_PER_DAY)] if spans is None else spans):
                if offset == 0 and end <= minute:
                    continue
                return self._at(day, start), self._at(day, end)
        return None

    # --- history ----------------------------------------------------------------------

    def usage_report(self, child: str, start: str, end: str) -> UsageReport:
        first, last = _parse_day(start, "from"), _parse_day(end, "to")
        uid = self.child_uid(child)
        with _argument_errors():
            return UsageReport(history.app_usage(self.db, uid, first, last),
                               history.site_usage(self.db, uid, first, last),
                               history.daily_usage(self.db, uid, first, last))

    def recent_events(self, child: str, kind: str, limit: int) -> list[history.StoredEvent]:
        _text(kind, "kind", 32)
        uid = self.child_uid(child)
        with _argument_errors():
            return history.recent_events(self.db, kind, uid, limit)

    def audit_log(self, limit: int) -> list[history.AuditEntry]:
        """The newest entries, cut to fit one D-Bus reply."""
        with _argument_errors():
            entries = history.audit_log(self.db, limit=limit)
        kept, size = [], 0
        for entry in entries:
            size += 64 + sum(len(v or "") for v in (entry.action, entry.target,
                                                     entry.old_value, entry.new_value))
            if kept and size > AUDIT_REPLY_BYTES:
                break
            kept.append(entry)
        return kept

    # --- time requests ----------------------------------------------------------------

    def request_time(self, uid: int, minutes: int, reason: str) -> RequestInfo:
        """A child (``uid`` is the CALLER's, from the bus) asks for time."""
        with self._reading("look up a child"):
            name = self._child(uid).name
        _whole(minutes, "minutes", 1, MAX_REQUEST_MINUTES)
        _text(reason, "reason", MAX_REASON, empty=True)
        with self._changes("create a time request") as events:
            pending = TimeRequest.select().where(
                (TimeRequest.uid == uid) & (TimeRequest.state == "pending")).count()
            if pending >= MAX_PENDING_REQUESTS:
                raise TooManyRequests(f"already {pending} pending requests; wait for an answer")
            row = TimeRequest.create(uid=uid, minutes=minutes, reason=reason, state="pending",
                                     created=self._utc_now())
            events.append(RequestCreated(row.id, uid, minutes))
        log.info("uid %d asked for %d minutes (request %d)", uid, minutes, row.id)
        return self._request_info(row, name)

    @staticmethod
    def _request_info(row: TimeRequest, name: str) -> RequestInfo:
        return RequestInfo(row.id, row.uid, name, row.minutes, row.reason, row.state,
                           row.granted_minutes, row.answered_by, row.created, row.answered)

    def list_requests(self, state: str) -> list[RequestInfo]:
        if state not in ("", *REQUEST_STATES):
            raise InvalidArgument(f"state must be one of '', {', '.join(REQUEST_STATES)}; "
                                  f"got {short_repr(state)}")
        with self._reading("list time requests"):
            names = dict(Child.select(Child.uid, Child.name).tuples())
            query = TimeRequest.select()
            if state:
                query = query.where(TimeRequest.state == state)
            rows = list(query.order_by(TimeRequest.id.desc()).limit(MAX_LISTED_REQUESTS))
        return [self._request_info(r, names.get(r.uid, "")) for r in rows]

    def answer_request(self, actor: int, request_id: int, approve: bool, minutes: int) -> RequestInfo:
        """Approve (``minutes``; 0 = as asked) or deny a pending request;
        approved minutes are added to the child's time today."""
        _whole(request_id, "request id", 1, 2**31 - 1)
        _whole(minutes, "minutes", 0, MAX_GRANT_MINUTES)
        with self._changes("answer a time request") as events:
            row = TimeRequest.get_or_none(TimeRequest.id == request_id)
            if row is None:
                raise NotFound(f"no time request {request_id}")
            if row.state != "pending":
                raise AlreadyAnswered(f"request {request_id} was already {row.state}")
            name = self._child(row.uid).name
            granted = (minutes or row.minutes) if approve else 0
            old = json.dumps({"state": row.state, "minutes": row.minutes})
            row.state = "approved" if approve else "denied"
            row.answered_by, row.granted_minutes, row.answered = actor, granted, self._utc_now()
            row.save()
            if granted:
                history.add_screen_time(self.db, row.uid, self._now().date(),
                                        granted_seconds=granted * 60)
            self._audit(actor, "answer_request", f"request:{request_id}", old,
                        json.dumps({"state": row.state, "granted_minutes": granted,
                                    "uid": row.uid}))
            events.append(RequestAnswered(row.id, row.uid, approve, granted))
        log.info("uid %d %s request %d (%d minutes)", actor, row.state, request_id, granted)
        return self._request_info(row, name)

