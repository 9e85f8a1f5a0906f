"""What the child sees, decided without widgets: the tray icon's text and
icon, the answer to a request in words. Shared by dots_cli.tray (no GTK)
and dots_desktop.child_window."""

from __future__ import annotations

from typing import Any

from .model import duration


def tray_text(status: dict[str, Any]) -> tuple[str, str]:
    """(title, icon name) for the StatusNotifierItem from GetStatus."""
    left = int(status.get("left_seconds", -1))
    if status.get("blocked"):
        return ("Outside your allowed hours" if status.get("blocked_reason") == "hours"
                else "Time is up"), "appointment-missed-symbolic"
    if left < 0:
        return "No time limit", "appointment-new-symbolic"
    return f"{duration(left)} left", "appointment-soon-symbolic"


def answer_text(approved: bool, minutes: int) -> str:
    if approved:
        return f"A parent gave you {minutes} more minute{'s' if minutes != 1 else ''}."
    return "A parent said no this time."
