#!/usr/bin/env bash
# `make run`: start DOTS Family Mode on this machine and show live events.
# Starts a private system bus from dbus/ when none is running, the collector
# as root, and a watcher (as dots-policyd, the only user allowed to hear the
# collector) printing decoded events. Ctrl-C stops everything it started.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv="$here/.venv"
rundir="${DOTS_RUNDIR:-/run/dots}"
mkdir -p "$rundir"
pids=()
cleanup() {
    trap - EXIT INT TERM
    for ((i=${#pids[@]}-1; i>=0; i--)); do
        kill "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    [ -n "${own_socket:-}" ] && rm -f "$own_socket"
    echo "run: stopped" >&2
}
trap cleanup EXIT INT TERM

socket=/run/dbus/system_bus_socket
if [ -S "$socket" ] && dbus-send --system --print-reply --dest=org.freedesktop.DBus \
        /org/freedesktop/DBus org.freedesktop.DBus.GetId >/dev/null 2>&1; then
    echo "run: using the running system bus; installing DOTS bus policies" >&2
    for f in "$here"/dbus/org.dots.*.conf; do
        cmp -s "$f" "/etc/dbus-1/system.d/$(basename "$f")" || install -m 644 "$f" /etc/dbus-1/system.d/
    done
    dbus-send --system --type=method_call --dest=org.freedesktop.DBus / \
        org.freedesktop.DBus.ReloadConfig
else
    echo "run: no system bus running; starting a private one from dbus/system-bus.conf" >&2
    mkdir -p /run/dbus
    rm -f "$socket"
    dbus-daemon --config-file="$here/dbus/system-bus.conf" --address="unix:path=$socket" \
        --nofork --nopidfile --nosyslog &
    pids+=($!)
    own_socket=$socket
    for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done
fi
export DBUS_SYSTEM_BUS_ADDRESS="unix:path=$socket"

echo "run: starting the collector (compiling the eBPF monitors takes a few seconds)" >&2
"$venv/bin/dots-collector" ${DOTS_COLLECTOR_ARGS:-} &
pids+=($!)
for _ in $(seq 600); do
    dbus-send --system --print-reply --dest=org.dots.Collector1 /org/dots/Collector1 \
        org.dots.Collector1.GetStatus 2>/dev/null | grep -A1 '"ready"' | grep -q true && break
    kill -0 "${pids[-1]}" 2>/dev/null || { echo "run: the collector failed to start" >&2; exit 1; }
    sleep 0.1
done

echo "run: live events (JSON lines) follow; Ctrl-C stops" >&2
setpriv --reuid=dots-policyd --regid=dots-policyd --clear-groups \
    env DBUS_SYSTEM_BUS_ADDRESS="$DBUS_SYSTEM_BUS_ADDRESS" \
    "$venv/bin/python" -m dots_collector.watch &
pids+=($!)
wait "${pids[-1]}"
