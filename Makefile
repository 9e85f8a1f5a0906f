# DOTS Family Mode. Every target installs what is missing first
# (scripts/install.sh is idempotent and needs root).
.PHONY: run test deps

VENV := .venv

deps:
	scripts/install.sh

run: deps
	scripts/run.sh

test: deps
	$(VENV)/bin/pytest -ra

# `make bench` (as root): every benchmark (bench/run.py): storm accounting
# (generated = delivered + lost, collector CPU per event), overhead beside
# bpftrace, ingest throughput, memory, latency, scale; writes
# bench/results/<date>.json and .png and the README's bench section with
# the issue-14 target table. `make bench QUICK=1` is a short smoke run
# (2 pairs, small storms); BENCH_ONLY=section,... runs some sections.
.PHONY: bench
bench: deps
	$(VENV)/bin/python bench/run.py

# `make install` / `make uninstall` (as root): a system-wide install, as a
# distribution package would lay it out (see scripts/install-system.sh).
# They do not run `deps`: they need only Debian's python3-venv and
# python3-bpfcc. DESTDIR stages the files for packaging (no users created,
# no root needed); the other directories may be overridden too.
.PHONY: install uninstall

DESTDIR ?=
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
LOCALSTATEDIR ?= /var
SYSTEMDUNITDIR ?= /lib/systemd/system
DBUSDATADIR ?= /usr/share/dbus-1
POLKITDATADIR ?= /usr/share/polkit-1
AUTOSTARTDIR ?= $(SYSCONFDIR)/xdg/autostart
INSTALL_ENV = DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" SYSCONFDIR="$(SYSCONFDIR)" \
	LOCALSTATEDIR="$(LOCALSTATEDIR)" SYSTEMDUNITDIR="$(SYSTEMDUNITDIR)" \
	DBUSDATADIR="$(DBUSDATADIR)" POLKITDATADIR="$(POLKITDATADIR)" AUTOSTARTDIR="$(AUTOSTARTDIR)"

install:
	$(INSTALL_ENV) scripts/install-system.sh

uninstall:
	$(INSTALL_ENV) scripts/uninstall-system.sh
