"""Starting-point policies by age group; parents adjust them afterwards."""

from __future__ import annotations

from dataclasses import dataclass

from .policy import Policy, PolicyError, short_repr


@dataclass(frozen=True, slots=True)
class Preset:
    name: str  # the age group, e.g. "8-12"
    description: str
    policy: Policy


def _preset(name: str, description: str, weekday: int, weekend: int, weekly: int,
            school_days: list[str], weekend_days: list[str]) -> Preset:
    hours = {day: school_days for day in ("mon", "tue", "wed", "thu", "fri")}
    hours.update({day: weekend_days for day in ("sat", "sun")})
    policy = Policy.from_dict({
        "daily_limit_minutes": weekday,
        "weekend_limit_minutes": weekend,
        "weekly_limit_minutes": weekly,
        "allowed_hours": hours,
    })
    return Preset(name, description, policy)


_PRESETS: dict[str, Preset] = {p.name: p for p in (
    _preset("5-7", "ages 5 to 7: 1 h on school days, 1.5 h at weekends, off by 18:30",
            60, 90, 420, ["15:00-18:30"], ["08:00-12:00", "14:00-18:30"]),
    _preset("8-12", "ages 8 to 12: 1.5 h on school days, 2.5 h at weekends, off by 20:00",
            90, 150, 660, ["15:00-20:00"], ["08:00-20:30"]),
    _preset("13-17", "ages 13 to 17: 2 h on school days, 3 h at weekends, off by 22:00",
            120, 180, 900, ["06:30-07:30", "14:00-22:00"], ["08:00-23:00"]),
)}


def preset_names() -> list[str]:
    return list(_PRESETS)


def list_presets() -> list[Preset]:
    """Every preset, youngest age group first."""
    return list(_PRESETS.values())


def preset_policy(name: str) -> Policy:
    """The policy of age group ``name`` ("5-7", "8-12", "13-17")."""
    try:
        return _PRESETS[name].policy.model_copy(deep=True)
    except (KeyError, TypeError):
        raise PolicyError(f"unknown preset {short_repr(name)} (expected one of {', '.join(_PRESETS)})") from None
