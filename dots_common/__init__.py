"""The vocabulary the three parts of DOTS Family Mode share: event records
and their D-Bus signatures, bus names and object paths, polkit action ids,
user and group names, the monitor list and shared limits, and journald-style
logging.

Neither daemon owns this package; it imports no bcc, no dbus-fast and no
peewee, so the unprivileged policy daemon and the command line can use it
without pulling in anything of the root collector.
"""
