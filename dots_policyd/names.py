"""The policy daemon's names on the bus and in polkit, in one place.

The wire contract itself is ``dbus/org.dots.Family1.xml``; the polkit
actions are declared in ``polkit/org.dots.family.policy``.
"""

from __future__ import annotations

BUS_NAME = "org.dots.Family1"
OBJECT_PATH = "/org/dots/Family1"
INTERFACE = "org.dots.Family1"
ERROR_PREFIX = "org.dots.Family1.Error"

#: polkit actions: parents change things / parents read history / a child
#: asks about itself (the daemon restricts it to the caller's own uid)
ACTION_MANAGE = "org.dots.family.manage"
ACTION_VIEW = "org.dots.family.view"
ACTION_REQUEST = "org.dots.family.request"
ACTIONS = (ACTION_MANAGE, ACTION_VIEW, ACTION_REQUEST)

#: the unprivileged account the daemon runs as; owns the polkit actions
POLICYD_USER = "dots-policyd"
#: unix group the polkit rules grant the parent actions to
PARENTS_GROUP = "dots-parents"

#: file name of the interface's introspection XML (the contract)
INTERFACE_XML = "org.dots.Family1.xml"

POLKIT_BUS_NAME = "org.freedesktop.PolicyKit1"
POLKIT_PATH = "/org/freedesktop/PolicyKit1/Authority"
POLKIT_INTERFACE = "org.freedesktop.PolicyKit1.Authority"
