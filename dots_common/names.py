"""Names on the bus, in polkit and in /etc/passwd, in one place.

The wire contracts themselves are ``dbus/org.dots.Collector1.xml`` and
``dbus/org.dots.Family1.xml``; the polkit actions are declared in
``polkit/org.dots.family.policy``.
"""

from __future__ import annotations

# --- the collector (root): only root and dots-policyd may talk to it ---------
COLLECTOR_BUS_NAME = "org.dots.Collector1"
COLLECTOR_PATH = "/org/dots/Collector1"
COLLECTOR_INTERFACE = "org.dots.Collector1"
COLLECTOR_ERROR = "org.dots.Collector1.Error"
COLLECTOR_XML = "org.dots.Collector1.xml"

# --- the policy daemon's public API ------------------------------------------
FAMILY_BUS_NAME = "org.dots.Family1"
FAMILY_PATH = "/org/dots/Family1"
FAMILY_INTERFACE = "org.dots.Family1"
FAMILY_ERROR = "org.dots.Family1.Error"
FAMILY_XML = "org.dots.Family1.xml"

# --- polkit actions: parents change things / parents read history / a child
# asks about itself (the daemon restricts it to the caller's own uid) ---------
ACTION_MANAGE = "org.dots.family.manage"
ACTION_VIEW = "org.dots.family.view"
ACTION_REQUEST = "org.dots.family.request"
ACTIONS = (ACTION_MANAGE, ACTION_VIEW, ACTION_REQUEST)

# --- accounts -------------------------------------------------------------------
#: the unprivileged account the policy daemon runs as; owns the polkit
#: actions and is the only non-root user the collector talks to
POLICYD_USER = "dots-policyd"
#: unix group the polkit rules grant the parent actions to
PARENTS_GROUP = "dots-parents"

# --- services of the desktop and the system we talk to ------------------------
DBUS_BUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
DBUS_INTERFACE = "org.freedesktop.DBus"
POLKIT_BUS_NAME = "org.freedesktop.PolicyKit1"
POLKIT_PATH = "/org/freedesktop/PolicyKit1/Authority"
POLKIT_INTERFACE = "org.freedesktop.PolicyKit1.Authority"
LOGIND_BUS_NAME = "org.freedesktop.login1"
LOGIND_PATH = "/org/freedesktop/login1"
LOGIND_MANAGER = "org.freedesktop.login1.Manager"
LOGIND_SESSION = "org.freedesktop.login1.Session"
NOTIFICATIONS_BUS_NAME = "org.freedesktop.Notifications"
NOTIFICATIONS_PATH = "/org/freedesktop/Notifications"
NOTIFICATIONS_INTERFACE = "org.freedesktop.Notifications"
