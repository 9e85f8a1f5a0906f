"""Errors of the policy core. Each maps to one named D-Bus error
(``org.dots.Family1.Error.<dbus_name>``) in :mod:`dots_policyd.dispatch`;
messages are one line meant for the caller, never carrying huge inputs."""

from __future__ import annotations

from typing import ClassVar


class FamilyError(Exception):
    """Base of the errors a caller may see."""

    dbus_name: ClassVar[str] = "Failed"


class NotAuthorized(FamilyError):
    """polkit refused (or could not be asked), or a child asked about
    someone else."""

    dbus_name = "NotAuthorized"


class InvalidArgument(FamilyError):
    """A value is out of range or malformed (the types were right)."""

    dbus_name = "InvalidArgs"


class InvalidPolicy(FamilyError):
    """A policy document, or the policy a change would produce, is invalid."""

    dbus_name = "InvalidPolicy"


class UnknownChild(FamilyError):
    """The user is not a registered child."""

    dbus_name = "UnknownChild"


class AlreadyExists(FamilyError):
    """The user is already a registered child."""

    dbus_name = "AlreadyExists"


class NotFound(FamilyError):
    """No such object (e.g. a time request id)."""

    dbus_name = "NotFound"


class AlreadyAnswered(FamilyError):
    """A time request can be answered once."""

    dbus_name = "AlreadyAnswered"


class StalePolicy(FamilyError):
    """The policy changed since the version the caller's edit was based on."""

    dbus_name = "StalePolicy"


class TooManyRequests(FamilyError):
    """A child has too many pending time requests."""

    dbus_name = "TooManyRequests"
