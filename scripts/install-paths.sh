# Sourced by scripts/install-system.sh and scripts/uninstall-system.sh: the
# directories both use (overridable from the environment, as the Makefile
# passes them) and the checks both make. The caller defines die().

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
LOCALSTATEDIR=${LOCALSTATEDIR:-/var}
SYSTEMDUNITDIR=${SYSTEMDUNITDIR:-/lib/systemd/system}
DBUSDATADIR=${DBUSDATADIR:-/usr/share/dbus-1}
POLKITDATADIR=${POLKITDATADIR:-/usr/share/polkit-1}
AUTOSTARTDIR=${AUTOSTARTDIR:-$SYSCONFDIR/xdg/autostart}

# Absolute paths only; without DESTDIR (a real install) only root may run.
check_paths() {
    PREFIX=${PREFIX%/}
    DESTDIR=${DESTDIR%/}
    local var
    for var in PREFIX SYSCONFDIR LOCALSTATEDIR SYSTEMDUNITDIR DBUSDATADIR POLKITDATADIR AUTOSTARTDIR; do
        case ${!var} in /*) ;; *) die "$var must be an absolute path (got '${!var}')";; esac
    done
    case $DESTDIR in ""|/*) ;; *) die "DESTDIR must be empty or an absolute path (got '$DESTDIR')";; esac
    [ -n "$PREFIX" ] || die "PREFIX must not be /"
    if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then
        die "must run as root (or stage into a directory with DESTDIR=...)"
    fi
}
