"""One child's policy document: a validated, immutable pydantic model.

The document travels as JSON (over the API, in the database); every field
is checked here so that nothing malformed reaches the enforcement code.
Helpers at the bottom return a *new* policy and validate it again
(``model_copy(update=...)`` alone would skip validation).
"""

# Longer than the ~400 lines a module is meant to have, on purpose: the one
# policy model (pydantic) with its field types, its error messages and the
# pure edits that return a new validated policy, kept together so that
# every rule about a policy document is in one place.

from __future__ import annotations

import datetime as dt
import fnmatch
import ipaddress
import json
import posixpath
import re
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

#: Caps that keep a document (and the kernel maps fed from it) bounded.
MAX_LIST = 10_000
MAX_WINDOWS_PER_DAY = 48
MAX_WARNINGS = 16
MAX_PATH = 4096
MAX_NAME = 255  # NAME_MAX
MAX_DOMAIN = 253
MAX_PATTERN = 1024
MAX_DOCUMENT_BYTES = 1024 * 1024
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKEND: frozenset[str] = frozenset({"sat", "sun"})
#: shorthands accepted by :func:`set_allowed_hours`
DAY_GROUPS: dict[str, tuple[str, ...]] = {
    "weekdays": WEEKDAYS[:5],
    "weekend": ("sat", "sun"),
    "all": WEEKDAYS,
}


class PolicyError(ValueError):
    """A policy document or a change to it is invalid; ``str()`` is one
    human-readable line."""


def short_repr(value: object, limit: int = 60) -> str:
    """repr() of a value, cut so that a 1 MB input never ends up in a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- field types -----------------------------------------------------------------

_WINDOW_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _clock_minutes(hours: str, minutes: str, text: str) -> int:
    h, m = int(hours), int(minutes)
    if m > 59 or h > 24 or (h == 24 and m != 0):
        raise ValueError(f"time window {short_repr(text)} has an invalid time of day")
    return h * 60 + m


def window_minutes(text: str) -> tuple[int, int]:
    """``"15:30-18:00"`` -> ``(930, 1080)``: minutes after midnight, end
    exclusive; ``24:00`` is the end of the day."""
    match = _WINDOW_RE.match(text)
    if not match:
        raise ValueError(f"time window {short_repr(text)} is not of the form HH:MM-HH:MM")
    start = _clock_minutes(match[1], match[2], text)
    end = _clock_minutes(match[3], match[4], text)
    if end <= start:
        raise ValueError(f"time window {short_repr(text)} ends before it starts")
    return start, end


def _format_window(start: int, end: int) -> str:
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def _check_window(text: str) -> str:
    return _format_window(*window_minutes(text))


def _check_app(name: str) -> str:
    if "\0" in name or "\n" in name:
        raise ValueError(f"app {short_repr(name)} contains a control character")
    if name.startswith("/"):
        path = posixpath.normpath(name)
        if path == "/":
            raise ValueError("app '/' is a directory, not a program")
        return path
    if "/" in name:
        raise ValueError(f"app {short_repr(name)} must be an absolute path or a bare program name")
    if name in ("", ".", "..") or name.strip() != name:
        raise ValueError(f"app {short_repr(name)} is not a program name")
    if len(name) > MAX_NAME:
        raise ValueError(f"app name {short_repr(name)} is longer than {MAX_NAME} characters")
    return name


_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _check_domain(text: str) -> str:
    name = text.lower().rstrip(".")
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"malformed domain name {short_repr(text)}") from None
    labels = name.split(".")
    if (not name or len(name) > MAX_DOMAIN or not all(_LABEL_RE.match(label) for label in labels)
            or labels[-1].isdigit()):
        raise ValueError(f"malformed domain name {short_repr(text)}")
    return name


def _check_site(text: str) -> str:
    """A domain, an IPv4/IPv6 address or a CIDR range, in canonical form."""
    site = text.strip()
    if "%" in site:
        raise ValueError(f"site {short_repr(text)}: scoped IPv6 addresses cannot be blocked")
    if "/" in site:
        try:
            return ipaddress.ip_network(site, strict=True).with_prefixlen
        except ValueError as exc:
            if "host bits set" in str(exc):
                fixed = ipaddress.ip_network(site, strict=False).with_prefixlen
                raise ValueError(f"address range {short_repr(text)} has host bits set "
                                 f"(did you mean {fixed}?)") from None
            raise ValueError(f"malformed address range {short_repr(text)}") from None
    try:
        return str(ipaddress.ip_address(site))
    except ValueError:
        pass
    if site.replace(".", "").isdigit() or ":" in site:
        raise ValueError(f"malformed IP address {short_repr(text)}")
    return _check_domain(site)


_CATEGORY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _check_category(name: str) -> str:
    if not _CATEGORY_RE.match(name):
        raise ValueError(f"category {short_repr(name)} must be 1 to 64 lower-case letters, digits, "
                         "'-' or '_'")
    return name


def _check_pattern(pattern: str) -> str:
    if "\0" in pattern or "\n" in pattern:
        raise ValueError(f"file pattern {short_repr(pattern)} contains a control character")
    if not pattern.startswith(("/", "*")):
        raise ValueError(f"file pattern {short_repr(pattern)} must start with '/' or '*'")
    try:
        re.compile(fnmatch.translate(pattern))
    except re.error:
        raise ValueError(f"file pattern {short_repr(pattern)} is not a valid glob") from None
    return pattern


def _check_day_windows(windows: list[str]) -> list[str]:
    """Sort one day's windows and refuse overlaps (touching ends are fine)."""
    spans = sorted(window_minutes(w) for w in windows)
    for (a, b), (c, d) in zip(spans, spans[1:]):
        if c < b:
            raise ValueError(f"time windows {_format_window(a, b)} and {_format_window(c, d)} overlap")
    return [_format_window(a, b) for a, b in spans]


def _unique(items: list[Any]) -> list[Any]:
    """Drop repeats, keep the first occurrence's order."""
    return list(dict.fromkeys(items))


AppName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH), AfterValidator(_check_app)]
Site = Annotated[str, StringConstraints(min_length=1, max_length=MAX_DOMAIN + 2), AfterValidator(_check_site)]
Domain = Annotated[str, StringConstraints(min_length=1, max_length=MAX_DOMAIN + 1),
                  AfterValidator(_check_domain)]
Category = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_check_category)]
FilePattern = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATTERN),
                        AfterValidator(_check_pattern)]
TimeWindow = Annotated[str, StringConstraints(max_length=32), AfterValidator(_check_window),
                       Field(json_schema_extra={"pattern": r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$",
                                                "examples": ["15:30-18:00"]})]
DayWindows = Annotated[list[TimeWindow], Field(max_length=MAX_WINDOWS_PER_DAY),
                       AfterValidator(_check_day_windows)]
DailyMinutes = Annotated[int, Field(ge=0, le=MINUTES_PER_DAY)]


# --- the model -------------------------------------------------------------------

class Policy(BaseModel):
    """Rules for one child. Absent limits mean "no limit"."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    daily_limit_minutes: DailyMinutes | None = Field(
        None, description="screen time allowed Monday to Friday, minutes; null = no limit")
    weekend_limit_minutes: DailyMinutes | None = Field(
        None, description="screen time allowed on Saturday and Sunday, minutes; null = no limit")
    weekly_limit_minutes: Annotated[int, Field(ge=0, le=MINUTES_PER_WEEK)] | None = Field(
        None, description="screen time allowed per week (Monday to Sunday), minutes; null = no limit")
    allowed_hours: dict[Weekday, DayWindows] = Field(
        default_factory=dict,
        description='windows "HH:MM-HH:MM" per weekday; a day not listed has no restriction, '
                    "an empty list allows no use that day")
    blocked_apps: list[AppName] = Field(
        default_factory=list, max_length=MAX_LIST,
        description="programs that may not run: absolute paths or bare program names")
    allow_list_only: bool = Field(False, description="when true, only allowed_apps may run")
    allowed_apps: list[AppName] = Field(default_factory=list, max_length=MAX_LIST)
    app_limits_minutes: Annotated[dict[AppName, DailyMinutes], Field(max_length=MAX_LIST)] = Field(
        default_factory=dict, description="daily time per program, minutes")
    # --- apps by identity (issue 13) ---
    always_allowed_apps: list[AppName] = Field(
        default_factory=list, max_length=MAX_LIST,
        description="apps (homework, learning) whose time does not count against screen time")
    at_end_only_always_allowed: bool = Field(
        False, description="at the limit or the end of the allowed hours, instead of end_action "
                           "only the always-allowed apps (and the desktop's own programs) run")
    # --- end of apps by identity ---
    blocked_sites: list[Site] = Field(
        default_factory=list, max_length=MAX_LIST,
        description="domain names, IPv4/IPv6 addresses or CIDR ranges")
    warning_minutes: list[Annotated[int, Field(gt=0, le=MINUTES_PER_DAY)]] = Field(
        default_factory=lambda: [15, 5, 1], max_length=MAX_WARNINGS,
        description="warn the child this many minutes before the end")
    end_action: Literal["lock", "terminate"] = Field(
        "lock", description="at the end: lock the session or terminate it")
    file_alerts: list[FilePattern] = Field(
        default_factory=list, max_length=MAX_LIST,
        description="glob patterns of file paths whose use alerts the parents")

    # --- web filtering (issue 15; owned by the web filter) --------------------------
    blocked_categories: list[Category] = Field(
        default_factory=list, max_length=256,
        description="category lists (dotsctl site list) whose domains are blocked")
    site_allow_list: bool = Field(
        False, description="when true, only allowed_sites (and names under them) resolve, and "
                           "only addresses answered for them may be reached")
    allowed_sites: list[Domain] = Field(default_factory=list, max_length=MAX_LIST)
    internet_hours: dict[Weekday, DayWindows] = Field(
        default_factory=dict,
        description='windows "HH:MM-HH:MM" per weekday when the network may be used; a day not '
                    "listed has no restriction, an empty list means no network that day")

    @field_validator("allowed_hours", "internet_hours", mode="before")
    @classmethod
    def _known_weekdays(cls, value: Any) -> Any:
        if isinstance(value, dict):
            unknown = [key for key in value if key not in WEEKDAYS]
            if unknown:
                raise ValueError(f"unknown weekday {short_repr(unknown[0])} "
                                 f"(expected one of {', '.join(WEEKDAYS)})")
        return value

    @field_validator("allowed_hours", "internet_hours")
    @classmethod
    def _days_in_order(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {day: value[day] for day in WEEKDAYS if day in value}

    @field_validator("blocked_apps", "allowed_apps", "always_allowed_apps", "blocked_sites",
                     "file_alerts", "blocked_categories", "allowed_sites")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return _unique(value)

    @field_validator("warning_minutes")
    @classmethod
    def _warnings(cls, value: list[int]) -> list[int]:
        return sorted(set(value), reverse=True)

    @model_validator(mode="after")
    def _allow_list_not_empty(self) -> Policy:
        if self.allow_list_only and not self.allowed_apps:
            raise ValueError("allow_list_only needs at least one entry in allowed_apps")
        if self.site_allow_list and not self.allowed_sites:
            raise ValueError("site_allow_list needs at least one entry in allowed_sites")
        if self.at_end_only_always_allowed and not self.always_allowed_apps:
            raise ValueError("at_end_only_always_allowed needs at least one entry in "
                             "always_allowed_apps")
        return self

    # --- construction and queries ------------------------------------------------

    @classmethod
    def from_json(cls, text: str | bytes) -> Policy:
        """Parse and validate a JSON document; :class:`PolicyError` if bad."""
        if len(text) > MAX_DOCUMENT_BYTES:
            raise PolicyError(f"policy document too large ({len(text)} bytes, "
                              f"at most {MAX_DOCUMENT_BYTES})")
        try:
            return cls.model_validate_json(text)
        except ValidationError as exc:
            raise PolicyError(describe_errors(exc)) from None

    @classmethod
    def from_dict(cls, data: Any) -> Policy:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PolicyError(describe_errors(exc)) from None

    def to_json(self) -> str:
        return self.model_dump_json()

    def daily_limit_for(self, day: dt.date) -> int | None:
        """Minutes allowed on ``day`` (weekend value on Saturday/Sunday)."""
        if WEEKDAYS[day.weekday()] in WEEKEND:
            return self.weekend_limit_minutes
        return self.daily_limit_minutes

    def windows_for(self, day: dt.date) -> list[tuple[int, int]] | None:
        """Allowed (start, end) minutes of ``day``; None = no restriction."""
        windows = self.allowed_hours.get(WEEKDAYS[day.weekday()])  # type: ignore[call-overload]
        return None if windows is None else [window_minutes(w) for w in windows]

    def blocked_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Blocked addresses and ranges (a single address as a /32 or /128)."""
        return [ipaddress.ip_network(s) for s in self.blocked_sites if _is_address(s)]

    def blocked_domains(self) -> list[str]:
        """Blocked domain names (to be resolved to addresses by the caller)."""
        return [s for s in self.blocked_sites if not _is_address(s)]

    def online_at(self, when: dt.datetime) -> bool:
        """Inside the internet hours at local time ``when`` (no entry for
        the day: always)."""
        windows = self.internet_hours.get(WEEKDAYS[when.weekday()])  # type: ignore[call-overload]
        if windows is None:
            return True
        minute = when.hour * 60 + when.minute
        return any(a <= minute < b for a, b in map(window_minutes, windows))


def _is_address(site: str) -> bool:
    return ":" in site or "/" in site or site.replace(".", "").isdigit()


# --- messages --------------------------------------------------------------------

def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part != "[key]":
            text += f".{part}" if text else str(part)
    return text


def _describe(err: ErrorDetails) -> str:
    where = _location(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"unknown field {where!r}"
    if kind == "json_invalid":
        return f"not valid JSON: {err.get('ctx', {}).get('error', err['msg'])}"
    msg = err["msg"].removeprefix("Value error, ")
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal",
                "int_type", "bool_type", "string_type", "list_type", "dict_type", "literal_error"):
        msg += f" (got {short_repr(err.get('input'), 40)})"
    return f"{where}: {msg}" if where else msg


def describe_errors(exc: ValidationError, most: int = 3) -> str:
    """One line out of pydantic's errors: the first ``most`` of them."""
    errors = exc.errors(include_url=False)
    parts = [_describe(e) for e in errors[:most]]
    if len(errors) > most:
        parts.append(f"and {len(errors) - most} more problem(s)")
    return "invalid policy: " + "; ".join(parts).replace("\n", " ")


def policy_json_schema() -> str:
    """The JSON schema of :class:`Policy`, for clients that build forms."""
    return json.dumps(Policy.model_json_schema(), sort_keys=True)


# --- pure edits (each returns a new, validated policy) ---------------------------

def _replace(policy: Policy, **changes: Any) -> Policy:
    return Policy.from_dict({**policy.model_dump(), **changes})


def _validated(check: Any, value: str) -> str:
    try:
        return check(value)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None


def normalize_app(name: str) -> str:
    """Canonical form of an app name (as stored in a policy)."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_PATH:
        raise PolicyError(f"app {short_repr(name)} must be 1 to {MAX_PATH} characters")
    return _validated(_check_app, name)


def normalize_site(site: str) -> str:
    """Canonical form of a site: lower-case domain, compressed address, CIDR."""
    if not isinstance(site, str) or not 0 < len(site) <= MAX_DOMAIN + 2:
        raise PolicyError(f"site {short_repr(site)} must be 1 to {MAX_DOMAIN + 2} characters")
    return _validated(_check_site, site)


def expand_days(days: Iterable[str]) -> list[str]:
    """Weekday names (and the groups weekdays/weekend/all) as weekday names."""
    out: list[str] = []
    for day in days:
        key = day.lower() if isinstance(day, str) else day
        if key in DAY_GROUPS:
            out.extend(DAY_GROUPS[key])
        elif key in WEEKDAYS:
            out.append(key)
        else:
            raise PolicyError(f"unknown weekday {short_repr(day)} (expected one of "
                              f"{', '.join(WEEKDAYS)}, or {', '.join(DAY_GROUPS)})")
    return _unique(out)


def set_daily_limit(policy: Policy, minutes: int | None, *, weekend: bool = False) -> Policy:
    """Weekday (or, with ``weekend``, Saturday/Sunday) limit; None = none."""
    field = "weekend_limit_minutes" if weekend else "daily_limit_minutes"
    return _replace(policy, **{field: minutes})


def set_weekly_limit(policy: Policy, minutes: int | None) -> Policy:
    return _replace(policy, weekly_limit_minutes=minutes)


def set_allowed_hours(policy: Policy, days: Iterable[str], windows: Sequence[str] | None) -> Policy:
    """Allowed windows for ``days``; ``None`` lifts the restriction for them,
    ``[]`` allows no use at all on them."""
    return _replace(policy, allowed_hours=_day_windows(policy.allowed_hours, days, windows))


def _day_windows(hours: dict[str, list[str]], days: Iterable[str],
                 windows: Sequence[str] | None) -> dict[str, list[str]]:
    """``hours`` with ``windows`` set for ``days`` (None: the days removed)."""
    out = dict(hours)
    for day in expand_days(days):
        if windows is None:
            out.pop(day, None)
        else:
            out[day] = list(windows)
    return out


def set_app_limit(policy: Policy, app: str, minutes: int | None) -> Policy:
    """Daily minutes for one app; None removes its limit."""
    name = normalize_app(app)
    limits = dict(policy.app_limits_minutes)
    if minutes is None:
        limits.pop(name, None)
    else:
        limits[name] = minutes
    return _replace(policy, app_limits_minutes=limits)


def set_allow_list(policy: Policy, enabled: bool, add: Iterable[str]) -> Policy:
    """Switch allow-list mode, adding ``add`` to the allowed apps first."""
    names = [normalize_app(a) for a in add]
    return _replace(policy, allow_list_only=enabled,
                    allowed_apps=_unique([*policy.allowed_apps, *names]))


def disallow_app(policy: Policy, app: str) -> Policy:
    name = normalize_app(app)
    return policy if name not in policy.allowed_apps else _replace(
        policy, allowed_apps=[a for a in policy.allowed_apps if a != name])


def block_app(policy: Policy, app: str) -> Policy:
    name = normalize_app(app)
    return policy if name in policy.blocked_apps else _replace(
        policy, blocked_apps=[*policy.blocked_apps, name])


def unblock_app(policy: Policy, app: str) -> Policy:
    name = normalize_app(app)
    return policy if name not in policy.blocked_apps else _replace(
        policy, blocked_apps=[a for a in policy.blocked_apps if a != name])


def block_site(policy: Policy, site: str) -> Policy:
    name = normalize_site(site)
    return policy if name in policy.blocked_sites else _replace(
        policy, blocked_sites=[*policy.blocked_sites, name])


def unblock_site(policy: Policy, site: str) -> Policy:
    name = normalize_site(site)
    return policy if name not in policy.blocked_sites else _replace(
        policy, blocked_sites=[s for s in policy.blocked_sites if s != name])


# --- web filtering edits (issue 15) ------------------------------------------------

def _normalized(value: Any, what: str, most: int, check: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= most:
        raise PolicyError(f"{what} {short_repr(value)} must be 1 to {most} characters")
    return _validated(check, value)


def normalize_category(name: str) -> str:
    return _normalized(name, "category", 64, _check_category)


def normalize_domain(name: str) -> str:
    return _normalized(name, "domain", MAX_DOMAIN + 1, _check_domain)


def block_category(policy: Policy, category: str) -> Policy:
    return _listed(policy, "blocked_categories", normalize_category(category), True)


def unblock_category(policy: Policy, category: str) -> Policy:
    return _listed(policy, "blocked_categories", normalize_category(category), False)


def _listed(policy: Policy, field: str, item: str, present: bool) -> Policy:
    """``item`` added to (or removed from) the list ``field``; the same
    policy when it already is (or is not) there."""
    items: list[str] = getattr(policy, field)
    if (item in items) == present:
        return policy
    return _replace(policy, **{field: [*items, item] if present else [i for i in items if i != item]})


def set_site_allow_list(policy: Policy, enabled: bool, add: Iterable[str],
                        remove: Iterable[str] = ()) -> Policy:
    """Switch site allow-list mode, adding ``add`` to (and dropping
    ``remove`` from) the allowed sites first."""
    added = [normalize_domain(d) for d in add]
    dropped = {normalize_domain(d) for d in remove}
    sites = [d for d in _unique([*policy.allowed_sites, *added]) if d not in dropped]
    return _replace(policy, site_allow_list=bool(enabled), allowed_sites=sites)


def set_internet_hours(policy: Policy, days: Iterable[str], windows: Sequence[str] | None) -> Policy:
    """Network windows for ``days``; None lifts the restriction, [] means
    no network on those days."""
    return _replace(policy, internet_hours=_day_windows(policy.internet_hours, days, windows))
