#!/usr/bin/env bash
# `make uninstall`: remove what scripts/install-system.sh installed, with the
# same DESTDIR / PREFIX / *DIR variables. Idempotent.
#
# Kept on purpose:
#   $LOCALSTATEDIR/lib/dots           the database (children's history, policies);
#                                     delete it by hand to forget everything
#   $SYSCONFDIR/dots/collector.toml   when it differs from the shipped default
#   the user dots-policyd and the groups dots-policyd, dots-parents: the kept
#   database belongs to dots-policyd, and a removed uid could be reused by an
#   unrelated account that would then own it (Debian packages never remove
#   system users either). `userdel dots-policyd; groupdel dots-parents` by hand.
#
# What is removed: the files listed in the manifest that the install wrote
# ($PREFIX/lib/dots-family/install-manifest), plus those the source tree
# would install (so an install interrupted before writing its manifest is
# removed as well), the venv, and the program symlinks that point into it.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/install-paths.sh
. "$here/scripts/install-paths.sh"

log() { printf 'uninstall: %s\n' "$*" >&2; }
die() { printf 'uninstall: error: %s\n' "$*" >&2; exit 1; }

check_paths

final="$PREFIX/lib/dots-family"
target="$DESTDIR$final"
conf="$SYSCONFDIR/dots/collector.toml"
units=(dots-collector.service dots-policyd.service)

# --- stop and disable the services (real uninstall only) ------------------------
unit_paths=$(systemd-analyze unit-paths 2>/dev/null || true)
if [ -z "$DESTDIR" ] && command -v systemctl >/dev/null \
        && [ -e "$SYSTEMDUNITDIR/dots-collector.service" ] \
        && grep -qxF "$SYSTEMDUNITDIR" <<<"$unit_paths"; then
    if [ -d /run/systemd/system ]; then
        systemctl stop "${units[@]}" >&2 || log "warning: could not stop ${units[*]}"
    fi
    systemctl disable "${units[@]}" >&2 || log "warning: could not disable ${units[*]}"
fi
# A collector that crashed (or was killed) leaves its programs pinned and in
# force (dots_collector/pinning.py); a clean stop removes them, and so does this.
if [ -z "$DESTDIR" ] && [ -d /sys/fs/bpf/dots ] && ! pgrep -x dots-collector >/dev/null; then
    find /sys/fs/bpf/dots -mindepth 2 -delete 2>/dev/null || true
    find /sys/fs/bpf/dots -mindepth 1 -type d -delete 2>/dev/null || true
    rmdir /sys/fs/bpf/dots 2>/dev/null || log "warning: could not remove /sys/fs/bpf/dots"
fi

# --- the files -------------------------------------------------------------------
files=()
if [ -f "$target/install-manifest" ]; then
    mapfile -t files < "$target/install-manifest"
fi
for f in "$here"/systemd/*.service; do files+=("$SYSTEMDUNITDIR/$(basename "$f")"); done
for f in "$here"/dbus/org.dots.*.conf; do files+=("$DBUSDATADIR/system.d/$(basename "$f")"); done
for f in "$here"/dbus/org.dots.*.service; do files+=("$DBUSDATADIR/system-services/$(basename "$f")"); done
shopt -s nullglob
for f in "$here"/polkit/*.policy; do files+=("$POLKITDATADIR/actions/$(basename "$f")"); done
for f in "$here"/polkit/*.rules; do files+=("$POLKITDATADIR/rules.d/$(basename "$f")"); done
shopt -u nullglob
files+=("$AUTOSTARTDIR/dots-agent.desktop")
files+=("$PREFIX/share/applications/org.dots.Family.desktop"
        "$PREFIX/share/metainfo/org.dots.Family.metainfo.xml"
        "$PREFIX/share/icons/hicolor/symbolic/apps/org.dots.Family-symbolic.svg"
        "$PREFIX/share/icons/hicolor/scalable/apps/org.dots.Family.svg")

removed=0
for f in "${files[@]}"; do
    [ -n "$f" ] || continue
    case $f in
        "$conf") continue ;;                          # below
        "$PREFIX"/bin/*|"$PREFIX"/sbin/*|"$PREFIX"/libexec/*) continue ;;  # below
        "$final"|"$final"/*) continue ;;
    esac
    if [ -e "$DESTDIR$f" ] || [ -L "$DESTDIR$f" ]; then
        rm -f "$DESTDIR$f"
        removed=$((removed + 1))
    fi
done

# Program symlinks, only when they point into our venv (never someone else's
# program of the same name).
for p in bin/dotsctl bin/dots-agent bin/dots-family sbin/dots-collector sbin/dots-household libexec/dots-policyd; do
    link="$DESTDIR$PREFIX/$p"
    if [ -L "$link" ]; then
        case $(readlink "$link") in
            ../lib/dots-family/bin/*|"$final"/bin/*) rm -f "$link"; removed=$((removed + 1)) ;;
            *) log "kept $PREFIX/$p: it does not point into $final" ;;
        esac
    fi
done
rmdir "$DESTDIR$PREFIX/libexec" 2>/dev/null || true   # only if now empty

# The configuration: removed only when unmodified.
if [ -e "$DESTDIR$conf" ]; then
    shipped="$target/share/dots-family/collector.toml"
    [ -e "$shipped" ] || shipped="$here/etc/collector.toml"
    if cmp -s "$shipped" "$DESTDIR$conf"; then
        rm -f "$DESTDIR$conf"
        removed=$((removed + 1))
    else
        log "kept $conf: it was modified"
    fi
fi
rmdir "$DESTDIR$SYSCONFDIR/dots" 2>/dev/null || true   # only if now empty

# The venv, and scratch directories of interrupted installs.
if [ -e "$target" ]; then
    [ -e "$target/pyvenv.cfg" ] || die "$target is not a venv installed by DOTS; not removing it"
    rm -rf "$target"
    removed=$((removed + 1))
fi
shopt -s nullglob
for d in "$DESTDIR$PREFIX"/lib/.dots-family.*; do rm -rf "$d"; done
shopt -u nullglob

# --- tell the running system (real uninstall only) --------------------------------
if [ -z "$DESTDIR" ]; then
    [ -d /run/systemd/system ] && command -v systemctl >/dev/null && systemctl daemon-reload || true
    if [ "$DBUSDATADIR" = /usr/share/dbus-1 ] && [ -S /run/dbus/system_bus_socket ]; then
        dbus-send --system --type=method_call --dest=org.freedesktop.DBus / \
            org.freedesktop.DBus.ReloadConfig 2>/dev/null || true
    fi
fi

statedir="$LOCALSTATEDIR/lib/dots"
[ -d "$DESTDIR$statedir" ] && log "kept the database in $statedir (delete it by hand to forget all history)"
log "kept the user dots-policyd and the groups dots-policyd and dots-parents (see the top of $0)"
log "removed $removed item(s) of DOTS Family Mode from ${DESTDIR:+$DESTDIR (staging) for }$PREFIX"
