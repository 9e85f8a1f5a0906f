#!/usr/bin/env bash
# `make install`: install DOTS Family Mode system-wide, the way a distribution
# package would, idempotently (run it again to upgrade or repair).
#
#   $PREFIX/lib/dots-family/        a venv on Debian's /usr/bin/python3 holding the
#                                   project and its dependencies, with Debian's bcc
#                                   (python3-bpfcc) linked in
#   $PREFIX/bin/dotsctl             symlinks into the venv's bin/
#   $PREFIX/bin/dots-agent          (only once the project provides dots-agent)
#   $PREFIX/sbin/dots-collector     root daemon; admins also run it by hand
#                                   (`dots-collector --stdout`)
#   $PREFIX/libexec/dots-policyd    started only by systemd / D-Bus activation, as
#                                   user dots-policyd, never by hand: libexec
#   $SYSTEMDUNITDIR/                dots-collector.service, dots-policyd.service
#   $DBUSDATADIR/system.d/          bus policies  org.dots.{Collector1,Family1}.conf
#   $DBUSDATADIR/system-services/   activation    org.dots.{Collector1,Family1}.service
#   $POLKITDATADIR/actions/         polkit/*.policy
#   $POLKITDATADIR/rules.d/         polkit/*.rules
#   $AUTOSTARTDIR/dots-agent.desktop
#   $PREFIX/bin/dots-family         the parents' app (GTK; Debian's gi linked in)
#   $PREFIX/share/applications/     org.dots.Family.desktop
#   $PREFIX/share/metainfo/         org.dots.Family.metainfo.xml (AppStream)
#   $PREFIX/share/icons/hicolor/    scalable and symbolic org.dots.Family icons
#   $SYSCONFDIR/dots/collector.toml (never overwritten once there)
#   $LOCALSTATEDIR/lib/dots         state directory, dots-policyd:dots-policyd 0750
#   users: system user dots-policyd, group dots-parents
#
# Integration files go where the system components read them, whatever PREFIX
# is: D-Bus reads only /usr/share/dbus-1 (and /etc), polkit only
# /usr/share/polkit-1, and /lib/systemd/system is where Debian 12 packages put
# units (systemd reads it, see `systemd-analyze unit-paths`).
#
# Environment (all set by the Makefile): DESTDIR (staging root, default none),
# PREFIX (/usr/local), SYSCONFDIR (/etc), LOCALSTATEDIR (/var), SYSTEMDUNITDIR
# (/lib/systemd/system), DBUSDATADIR (/usr/share/dbus-1), POLKITDATADIR
# (/usr/share/polkit-1), AUTOSTARTDIR ($SYSCONFDIR/xdg/autostart),
# DOTS_PYTHON (/usr/bin/python3), BCC_DIR (/usr/lib/python3/dist-packages/bcc).
#
# The venv and DESTDIR. A venv hardcodes its own path (console-script
# shebangs, bin/activate*, pyvenv.cfg, compiled .pyc files). The venv is
# therefore always built in a scratch directory beside its destination
# ($DESTDIR$PREFIX/lib/.dots-family.XXXXXX), then relocated to its final path
# $PREFIX/lib/dots-family: every occurrence of the scratch path in bin/ and
# pyvenv.cfg is rewritten, and all bytecode is recompiled with the final path
# (compileall -d); the install fails if the scratch path is still found
# anywhere. Then it replaces the old venv with a rename, so an upgrade is
# almost atomic and a failed build leaves the installed one untouched.
# bin/python stays a symlink to /usr/bin/python3 (no --copies: a copied
# interpreter would not follow Debian's Python updates, bcc is built for the
# system one anyway). The same path is taken with and without DESTDIR.
set -euo pipefail
umask 022

here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/install-paths.sh
. "$here/scripts/install-paths.sh"
python=${DOTS_PYTHON:-/usr/bin/python3}
bcc_dir=${BCC_DIR:-/usr/lib/python3/dist-packages/bcc}

log() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

# --- checks ----------------------------------------------------------------
check_paths
[ -x "$python" ] || die "$python not found (Debian package python3)"
"$python" -c 'import venv, ensurepip' 2>/dev/null \
    || die "$python cannot create venvs: install Debian's python3-venv (scripts/install.sh does)"
if [ ! -d "$bcc_dir" ]; then
    [ -n "$DESTDIR" ] || die "Debian's bcc is missing at $bcc_dir: install python3-bpfcc (scripts/install.sh does)"
    log "warning: $bcc_dir is missing here; linking it anyway (the target machine needs python3-bpfcc)"
fi

final="$PREFIX/lib/dots-family"      # where the venv will live
target="$DESTDIR$final"              # where it is written now
manifest=()                          # final paths of every file installed
installed() { manifest+=("$1"); }

# A directory under DESTDIR; existing ones keep their owner and mode (polkit's
# rules.d is polkitd's and 0700 on Debian).
mkdir_p() { [ -d "$DESTDIR$1" ] || install -d -m 0755 "$DESTDIR$1"; }

# install_file SRC DEST-DIR [NAME] [MODE]: copy SRC, rewriting for this PREFIX
# the /usr/local/ prefix of Exec*= and TryExec= lines, and the bare program
# name dots-agent of the autostart entry into its absolute path.
install_file() {
    local src=$1 dir=$2 name=${3:-$(basename "$1")} mode=${4:-0644}
    mkdir_p "$dir"
    local tmp
    tmp=$(mktemp "$DESTDIR$dir/.$name.XXXXXX")
    "$python" - "$src" "$tmp" "$PREFIX" <<'EOF'
import re, sys
src, dst, prefix = sys.argv[1:4]
text = open(src, encoding="utf-8").read()
text = re.sub(r"^((?:Exec\w*|TryExec)=[-@:+!]*)/usr/local/",
              lambda m: m.group(1) + prefix + "/", text, flags=re.M)
text = re.sub(r"^((?:Exec|TryExec)=)(dots-agent|dots-family)\b",
              lambda m: m.group(1) + prefix + "/bin/" + m.group(2), text, flags=re.M)
open(dst, "w", encoding="utf-8").write(text)
EOF
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$DESTDIR$dir/$name"
    installed "$dir/$name"
}

# --- the venv, built beside its destination, then relocated -----------------
mkdir_p "$PREFIX/lib"
if [ -e "$target" ] && [ ! -e "$target/pyvenv.cfg" ]; then
    die "$target exists and is not a venv installed by DOTS; move it away first"
fi
work=$(mktemp -d)
stage=$(mktemp -d "$DESTDIR$PREFIX/lib/.dots-family.XXXXXX")
cleanup() { rm -rf "$work" "$stage" "${old:-}"; }
trap cleanup EXIT
chmod 0755 "$stage"

# Build from a copy of the source tree: an in-tree build would write build/
# and *.egg-info into the repository.
mkdir "$work/src"
tar -C "$here" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache \
    --exclude=./tests --exclude=./bench -cf - . | tar -C "$work/src" -xf -

log "creating the venv (final path $final) on $python"
"$python" -m venv "$stage"
log "installing the project and its dependencies into it"
"$stage/bin/python" -m pip install --quiet --no-compile --disable-pip-version-check \
    "$work/src[postgres]" >&2 || die "pip install failed"  # [postgres]: database URLs, household mode

log "relocating the venv from $stage to $final"
"$python" - "$stage" "$final" <<'EOF'
import os, sys
stage, final = (p.encode() for p in sys.argv[1:3])
def fix(path):
    with open(path, "rb") as f:
        data = f.read()
    if stage in data:
        with open(path, "wb") as f:
            f.write(data.replace(stage, final))
bindir = os.path.join(stage, b"bin")
for name in os.listdir(bindir):
    path = os.path.join(bindir, name)
    if os.path.isfile(path) and not os.path.islink(path):
        fix(path)
fix(os.path.join(stage, b"pyvenv.cfg"))
EOF
find "$stage" -name '*.pyc' -delete
if ! out=$("$stage/bin/python" -m compileall -q -j 0 -d "$final/lib" "$stage/lib" 2>&1); then
    # as pip does: a file that does not compile (test data, say) is no reason to fail
    log "warning: some files could not be byte-compiled:"
    printf '%s\n' "$out" | head -n 20 >&2
fi

# Debian's bcc, linked alone (the PyPI package named "bcc" is unrelated).
# Linked after byte-compiling, so that Debian's own files are never touched;
# the checks below must not write bytecode (it would name the scratch path).
export PYTHONDONTWRITEBYTECODE=1
site=$("$stage/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
ln -sfn "$bcc_dir" "$site/bcc"
# Debian's GTK bindings for dots-family and the child's window (gi, cairo).
for module in gi cairo; do
    ln -sfn "/usr/lib/python3/dist-packages/$module" "$site/$module"
done
if [ -d "$bcc_dir" ]; then
    "$stage/bin/python" -c 'import bcc' || die "bcc is not importable from the new venv"
fi
"$stage/bin/python" -c 'import dots_collector, dots_policyd, dots_cli' \
    || die "the project is not importable from the new venv"
left=$(grep -rlF -- "$stage" "$stage" || true)
[ -z "$left" ] || die "the scratch path $stage is still written in: $left"

# The shipped default configuration, for `make uninstall` to tell whether the
# one in $SYSCONFDIR/dots was modified.
install -D -m 0644 "$here/etc/collector.toml" "$stage/share/dots-family/collector.toml"

if [ -e "$target" ]; then
    old=$(mktemp -d "$DESTDIR$PREFIX/lib/.dots-family.old.XXXXXX")
    mv "$target" "$old/venv"
    log "replacing the previous venv"
fi
if ! mv "$stage" "$target"; then
    [ -n "${old:-}" ] && mv "$old/venv" "$target"
    die "could not move the new venv to $target (the previous one is back)"
fi
rm -rf "${old:-}"

# --- programs -----------------------------------------------------------------
link_program() {   # link_program DIR NAME: $DIR/NAME -> the venv's bin/NAME
    local dir=$1 name=$2
    mkdir_p "$PREFIX/$dir"
    if [ -e "$target/bin/$name" ]; then
        ln -sfn "../lib/dots-family/bin/$name" "$DESTDIR$PREFIX/$dir/$name"
        installed "$PREFIX/$dir/$name"
    else
        [ -L "$DESTDIR$PREFIX/$dir/$name" ] && rm -f "$DESTDIR$PREFIX/$dir/$name"
        log "note: this version of the project has no $name program; $PREFIX/$dir/$name not installed"
    fi
}
link_program bin dotsctl
link_program bin dots-agent
link_program bin dots-family
link_program sbin dots-collector
link_program libexec dots-policyd
link_program sbin dots-household
for p in dotsctl dots-collector dots-policyd; do
    [ -e "$target/bin/$p" ] || die "the venv has no $p program"
done

# --- systemd, D-Bus, polkit, autostart -----------------------------------------
for unit in "$here"/systemd/*.service; do
    install_file "$unit" "$SYSTEMDUNITDIR"
done
for f in "$here"/dbus/org.dots.*.conf; do
    install_file "$f" "$DBUSDATADIR/system.d"
done
for f in "$here"/dbus/org.dots.*.service; do
    install_file "$f" "$DBUSDATADIR/system-services"
done
shopt -s nullglob
policies=("$here"/polkit/*.policy)
rules=("$here"/polkit/*.rules)
shopt -u nullglob
[ ${#policies[@]} -gt 0 ] || log "warning: no polkit/*.policy in the source tree"
for f in "${policies[@]}"; do install_file "$f" "$POLKITDATADIR/actions"; done
for f in "${rules[@]}"; do install_file "$f" "$POLKITDATADIR/rules.d"; done

# The autostart entry names the installed program by its absolute path.
install_file "$here/dots_cli/data/dots-agent.desktop" "$AUTOSTARTDIR"

# The parents' app in the application menu and in GNOME Software / Discover.
data="$here/dots_desktop/data"
install_file "$data/org.dots.Family.desktop" "$PREFIX/share/applications"
install_file "$data/org.dots.Family.metainfo.xml" "$PREFIX/share/metainfo"
install_file "$data/org.dots.Family-symbolic.svg" "$PREFIX/share/icons/hicolor/symbolic/apps"
install_file "$data/org.dots.Family-symbolic.svg" "$PREFIX/share/icons/hicolor/scalable/apps" \
    org.dots.Family.svg

# --- configuration (a conffile: never overwritten) -----------------------------
mkdir_p "$SYSCONFDIR/dots"
conf="$SYSCONFDIR/dots/collector.toml"
if [ ! -e "$DESTDIR$conf" ]; then
    install -m 0644 "$here/etc/collector.toml" "$DESTDIR$conf"
    log "installed the default configuration $conf"
elif cmp -s "$here/etc/collector.toml" "$DESTDIR$conf"; then
    :
else
    log "kept your $conf (it differs from the shipped default, now in $final/share/dots-family/collector.toml)"
fi
installed "$conf"

# --- users, group and state directory ------------------------------------------
statedir="$LOCALSTATEDIR/lib/dots"
if [ -n "$DESTDIR" ]; then
    log "DESTDIR is set: not creating the user dots-policyd and the group dots-parents," \
        "and not changing the owner of $statedir (the target machine's installer must," \
        "see scripts/install-system.sh; systemd's StateDirectory= also fixes the owner)"
    mkdir_p "$statedir"
    chmod 0750 "$DESTDIR$statedir"
else
    getent group dots-parents >/dev/null || { groupadd --system dots-parents; log "created the group dots-parents"; }
    getent passwd dots-policyd >/dev/null || {
        useradd --system --user-group --no-create-home --home-dir "$statedir" \
            --shell /usr/sbin/nologin --comment "DOTS Family Mode policy daemon" dots-policyd
        log "created the system user dots-policyd"
    }
    getent group dots-policyd >/dev/null || { groupadd --system dots-policyd; log "created the group dots-policyd"; }
    install -d -m 0750 -o dots-policyd -g dots-policyd "$statedir"
    chown dots-policyd:dots-policyd "$statedir"   # when it existed already
    chmod 0750 "$statedir"
fi

# --- manifest: what `make uninstall` removes -------------------------------------
printf '%s\n' "${manifest[@]}" > "$target/install-manifest"

# --- tell the running system (only for a real install) -------------------------
if [ -z "$DESTDIR" ]; then
    unit_paths=$(systemd-analyze unit-paths 2>/dev/null || true)
    if ! command -v systemctl >/dev/null; then
        log "systemctl not found: the units are installed but not enabled"
    elif ! grep -qxF "$SYSTEMDUNITDIR" <<<"$unit_paths"; then
        log "$SYSTEMDUNITDIR is not a directory systemd reads: the units are not enabled"
    else
        [ -d /run/systemd/system ] && systemctl daemon-reload
        if systemctl enable dots-collector.service dots-policyd.service >&2; then
            log "enabled dots-collector.service and dots-policyd.service"
        else
            log "warning: systemctl enable failed; enable the units by hand"
        fi
        if [ -d /run/systemd/system ]; then
            log "start them now with: systemctl start dots-policyd.service (it pulls in the collector)"
        else
            log "systemd is not running here (not PID 1): the units start at the next boot under systemd"
        fi
    fi
    if [ "$DBUSDATADIR" = /usr/share/dbus-1 ] && [ -S /run/dbus/system_bus_socket ]; then
        dbus-send --system --type=method_call --dest=org.freedesktop.DBus / \
            org.freedesktop.DBus.ReloadConfig 2>/dev/null && log "reloaded the system bus configuration" || true
    fi
fi
log "installed DOTS Family Mode into ${DESTDIR:+$DESTDIR (staging) for }$PREFIX"
