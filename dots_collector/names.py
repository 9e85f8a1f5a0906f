"""The collector's bus names, in one place."""

BUS_NAME = "org.dots.Collector1"
OBJECT_PATH = "/org/dots/Collector1"
INTERFACE = "org.dots.Collector1"
ERROR_PREFIX = "org.dots.Collector1.Error"

#: the only unprivileged user allowed to talk to the collector (bus policy)
POLICYD_USER = "dots-policyd"
