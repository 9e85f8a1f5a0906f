#!/usr/bin/env bash
# Install everything DOTS Family Mode needs on a Debian 12 machine, idempotently:
# Debian packages, kernel headers for bcc, tracefs/bpffs mounts, the project's
# venv (with Debian's bcc linked in), and the system users/groups.
# Each step checks first and does nothing when its work is already done.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv="${DOTS_VENV:-$here/.venv}"
# Debian's own Python: bcc is built for it, and the unprivileged daemon users
# can run it (a pyenv Python under /root is unreadable to them).
python="${DOTS_PYTHON:-/usr/bin/python3}"
log() { printf 'install: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    echo "install: must run as root (it installs Debian packages and mounts bpffs)" >&2
    exit 1
fi

# --- Debian packages -------------------------------------------------------
packages=(python3-bpfcc bpfcc-tools bpftool bpftrace dbus-daemon dbus-bin polkitd
          python3-venv python3-dbusmock python3-gi postgresql util-linux procps iproute2
          make gcc pkg-config libdbus-1-dev libglib2.0-dev chromium systemd
          gir1.2-gtk-4.0 gir1.2-adw-1 python3-gi-cairo xvfb xauth at-spi2-core
          python3-pyatspi python3-dogtail)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

kver=$(uname -r)
kbuild="/lib/modules/$kver/build"
headers_pkg=""
if [ ! -e "$kbuild/include" ]; then
    stamp=/var/lib/apt/periodic/dots-update-stamp
    if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440)" ]; then
        log "apt-get update"
        apt-get update -qq
        mkdir -p "$(dirname "$stamp")" && touch "$stamp"
    fi
    if apt-cache show "linux-headers-$kver" >/dev/null 2>&1; then
        headers_pkg="linux-headers-$kver"
    else
        headers_pkg=$(apt-cache search --names-only '^linux-headers-[0-9].*-amd64$' \
            | awk '{print $1}' | grep -vE -- '-(cloud|rt)-amd64$' | sort -V | tail -n 1)
        [ -n "$headers_pkg" ] || { log "no linux-headers package found"; exit 1; }
        log "no headers for $kver; using the newest available: $headers_pkg"
    fi
    dpkg-query -W -f='${Status}' "$headers_pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$headers_pkg")
fi

if [ ${#missing[@]} -gt 0 ]; then
    stamp=/var/lib/apt/periodic/dots-update-stamp
    if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +1440)" ]; then
        log "apt-get update"
        apt-get update -qq
        mkdir -p "$(dirname "$stamp")" && touch "$stamp"
    fi
    log "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# --- kernel headers at /lib/modules/$(uname -r)/{build,source} -----------
if [ ! -e "$kbuild/include" ]; then
    hdir="/usr/src/$headers_pkg"
    common=$(ls -d /usr/src/"${headers_pkg%-amd64}"-common* 2>/dev/null | head -n 1 || true)
    [ -d "$hdir" ] || { log "headers directory $hdir missing"; exit 1; }
    mkdir -p "/lib/modules/$kver"
    ln -sfn "$hdir" "$kbuild"
    [ -n "$common" ] && ln -sfn "$common" "/lib/modules/$kver/source"
    log "linked $kbuild -> $hdir and source -> ${common:-none}"
fi

# --- tracefs, bpffs, cgroup v2 -------------------------------------------
mountpoint -q /sys/kernel/tracing || { mount -t tracefs tracefs /sys/kernel/tracing; log "mounted tracefs"; }
mountpoint -q /sys/fs/bpf || { mkdir -p /sys/fs/bpf; mount -t bpf bpffs /sys/fs/bpf; log "mounted bpffs"; }

# --- users and groups ------------------------------------------------------
getent group dots-parents >/dev/null || { groupadd --system dots-parents; log "created group dots-parents"; }
getent passwd dots-policyd >/dev/null || {
    useradd --system --no-create-home --home-dir /var/lib/dots --shell /usr/sbin/nologin dots-policyd
    log "created user dots-policyd"
}

# --- the checkout must be reachable by dots-policyd and the test users --------
# They run the venv's programs from here: a checkout under a private
# directory (mktemp -d is 0700) would fail with "Permission denied". Only
# the traverse bit is added, never read or write.
dir="$here"
while [ "$dir" != "/" ]; do
    if [ "$(id -u)" = 0 ] && [ "$(( 0$(stat -c %a "$dir") & 1 ))" = 0 ]; then
        log "letting other users traverse $dir (chmod o+x): dots-policyd runs $venv"
        chmod o+x "$dir"
    fi
    dir=$(dirname "$dir")
done

# --- the venv --------------------------------------------------------------
if [ -x "$venv/bin/python" ] && ! grep -q "^home = $(dirname "$python")\$" "$venv/pyvenv.cfg"; then
    log "$venv was made by another Python; recreating it with $python"
    rm -rf "$venv"
fi
if [ ! -x "$venv/bin/python" ]; then
    log "creating $venv"
    "$python" -m venv "$venv"
fi
stamp="$venv/.dots-installed"
if [ ! -e "$stamp" ] || [ "$here/pyproject.toml" -nt "$stamp" ]; then
    log "installing the project (editable, with test extras) into $venv"
    piplog="$venv/pip-install.log"
    if ! { "$venv/bin/pip" install -q --upgrade pip && "$venv/bin/pip" install -q -e "$here[test]"; } \
            >"$piplog" 2>&1; then
        tail -n 30 "$piplog" >&2
        log "pip install failed (full log: $piplog)"
        exit 1
    fi
    touch "$stamp"
fi
# Debian's bcc, linked alone (the PyPI package named "bcc" is unrelated).
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -e "$site/bcc" ]; then
    ln -sfn /usr/lib/python3/dist-packages/bcc "$site/bcc"
    log "linked Debian's bcc into $site"
fi
"$venv/bin/python" -c 'import bcc' || { log "bcc is not importable from the venv"; exit 1; }
# Debian's GTK bindings for the desktop apps (dots_desktop) and their tests,
# linked alone like bcc: gi (PyGObject, built for Debian's Python), cairo,
# and the accessibility clients pyatspi and dogtail. No system site packages.
for module in gi cairo pyatspi dogtail; do
    if [ ! -e "$site/$module" ]; then
        ln -sfn "/usr/lib/python3/dist-packages/$module" "$site/$module"
        log "linked Debian's $module into $site"
    fi
done
"$venv/bin/python" -c 'import gi; gi.require_version("Gtk", "4.0"); gi.require_version("Adw", "1")' \
    || { log "GTK 4 / libadwaita are not importable from the venv"; exit 1; }
log "ready"
