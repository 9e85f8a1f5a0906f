"""``dotsctl doctor``: is this machine ready for DOTS Family Mode? Each
check answers in plain words, says how to fix a problem, and says so
when it cannot tell (rather than guessing). Only reads: the kernel's
files, mounts, installed files, names on the system bus, systemctl."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import pwd
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

from dots_common.names import COLLECTOR_BUS_NAME as COLLECTOR
from dots_common.names import POLICYD_USER

from .client import BUS_NAME, CliError, FamilyClient
from .commands.machine import household_checks

OK, PROBLEM, WARNING, UNKNOWN = "ok", "problem", "warning", "unknown"

BTF = "/sys/kernel/btf/vmlinux"
TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
BPFFS = "/sys/fs/bpf"
POLKIT_ACTIONS = "/usr/share/polkit-1/actions/org.dots.family.policy"
POLKIT_RULES = ("/usr/share/polkit-1/rules.d/49-org.dots.family.rules",
                "/etc/polkit-1/rules.d/49-org.dots.family.rules")
BUS_POLICIES = ("org.dots.Collector1.conf", "org.dots.Family1.conf")
BUS_POLICY_DIRS = ("/usr/share/dbus-1/system.d", "/etc/dbus-1/system.d")
UNITS = ("dots-collector.service", "dots-policyd.service")
DATABASE = os.environ.get("DOTS_DATABASE", "/var/lib/dots/dots.db")
#: the daemon's pipeline health: a{sv} with collector_connected (b),
#: events_stored (t), events_lost (x, -1 = unknown), last_event_time (x)
HEALTH_METHOD = "GetDaemonStatus"

SYS_BPF = 321  # x86_64
BPF_PROG_LOAD = 5


@dataclasses.dataclass
class Check:
    name: str
    state: str
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _mounted(path: str, fstype: str) -> bool:
    try:
        with open("/proc/self/mounts") as f:
            return any(line.split()[1] == path and line.split()[2] == fstype for line in f)
    except OSError:
        return False


def check_bpf() -> Check:
    name = "kernel BPF support"
    if not os.path.exists(BTF):
        return Check(name, PROBLEM, f"the kernel has no type information ({BTF} is missing), "
                     "so the monitors cannot be loaded",
                     "use a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's kernels are)")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    # BPF_PROG_LOAD with no attributes: EFAULT/EINVAL/EPERM mean the call
    # exists; ENOSYS means the kernel has no bpf() at all
    result = libc.syscall(SYS_BPF, BPF_PROG_LOAD, None, 0)
    err = ctypes.get_errno() if result < 0 else 0
    if err == errno.ENOSYS:
        return Check(name, PROBLEM, "the kernel has no bpf() system call",
                     "use a kernel built with CONFIG_BPF_SYSCALL=y")
    return Check(name, OK, f"bpf() system call present, kernel type information at {BTF}")


def check_mounts() -> list[Check]:
    out = []
    tracefs = next((p for p in TRACEFS if _mounted(p, "tracefs") or os.path.isfile(f"{p}/trace")), None)
    if tracefs:
        out.append(Check("tracefs", OK, f"mounted at {tracefs}"))
    else:
        out.append(Check("tracefs", PROBLEM, "the kernel's tracing file system is not mounted; "
                         "the monitors need its tracepoints",
                         "mount -t tracefs tracefs /sys/kernel/tracing (scripts/install.sh does it)"))
    if _mounted(BPFFS, "bpf"):
        out.append(Check("bpffs", OK, f"mounted at {BPFFS}"))
    else:
        out.append(Check("bpffs", PROBLEM, f"the BPF file system is not mounted at {BPFFS}",
                         f"mount -t bpf bpf {BPFFS} (scripts/install.sh does it)"))
    return out


def check_bcc() -> Check:
    try:
        import bcc  # noqa: F401
    except Exception as exc:  # ImportError, or libbcc failing to load
        return Check("bcc", PROBLEM, f"the BPF compiler collection cannot be loaded ({exc})",
                     "apt-get install python3-bpfcc (never 'pip install bcc': "
                     "that is an unrelated project)")
    return Check("bcc", OK, "importable")


def check_bus(client: FamilyClient) -> list[Check]:
    try:
        family = client.name_has_owner(BUS_NAME)
        collector = client.name_has_owner(COLLECTOR)
        polkit = client.name_has_owner("org.freedesktop.PolicyKit1")
    except CliError as exc:
        return [Check("system bus", PROBLEM, exc.message, "start dbus (systemctl start dbus)")]
    return [
        Check("collector", OK, f"running ({COLLECTOR} is on the system bus)") if collector else
        Check("collector", PROBLEM, "the collector (the part that watches programs) is not running",
              "systemctl start dots-collector"),
        Check("policy daemon", OK, f"running ({BUS_NAME} is on the system bus)") if family else
        Check("policy daemon", PROBLEM, "the policy daemon (the part that applies the rules) "
              "is not running", "systemctl start dots-policyd"),
        Check("polkit", OK, "running") if polkit else
        Check("polkit", PROBLEM, "polkit is not running, so the policy daemon refuses every "
              "request", "apt-get install polkitd; systemctl start polkit"),
    ]


def check_files() -> list[Check]:
    out = []
    if os.path.isfile(POLKIT_ACTIONS):
        out.append(Check("polkit actions", OK, f"installed ({POLKIT_ACTIONS})"))
    else:
        out.append(Check("polkit actions", PROBLEM, f"{POLKIT_ACTIONS} is missing: nobody can "
                         "be authorized to use the policy daemon", "make install"))
    rules = next((p for p in POLKIT_RULES if os.path.isfile(p)), None)
    if rules:
        out.append(Check("polkit rules", OK, f"installed ({rules})"))
    else:
        out.append(Check("polkit rules", PROBLEM, "the rules that let parents (group "
                         "dots-parents) manage children are missing", "make install"))
    missing = [n for n in BUS_POLICIES
               if not any(os.path.isfile(os.path.join(d, n)) for d in BUS_POLICY_DIRS)]
    if missing:
        out.append(Check("bus policy", PROBLEM, f"missing: {', '.join(missing)} (the daemons "
                         "cannot own their names on the system bus)", "make install"))
    else:
        out.append(Check("bus policy", OK, "installed"))
    return out


def check_units(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> Check:
    name = "services enabled"
    if shutil.which("systemctl") is None or not os.path.isdir("/run/systemd/system"):
        return Check(name, UNKNOWN, "systemd is not running here, so the services cannot be "
                     "checked (started by hand or by a container?)")
    states = {}
    for unit in UNITS:
        try:
            proc = run(["systemctl", "is-enabled", unit], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError) as exc:
            return Check(name, UNKNOWN, f"systemctl did not answer ({exc})")
        states[unit] = (proc.stdout.strip() or proc.stderr.strip() or "unknown").splitlines()[0]
    off = {u: s for u, s in states.items() if s not in ("enabled", "static", "enabled-runtime")}
    if off:
        return Check(name, PROBLEM, "; ".join(f"{u} is {s}" for u, s in off.items())
                     + ": the system will not start them at boot",
                     "systemctl enable --now " + " ".join(off))
    return Check(name, OK, ", ".join(f"{u} enabled" for u in UNITS))


def check_database(path: str = DATABASE) -> Check:
    name = "database"
    if "://" in path:
        return Check(name, UNKNOWN, f"a database server ({path.split('://')[0]}); "
                     "ask the policy daemon's log whether it can write")
    try:
        me = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        me = str(os.geteuid())
    if os.geteuid() != 0 and me != POLICYD_USER:
        return Check(name, UNKNOWN, f"cannot check {path} as {me}: run dotsctl doctor as root")
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        return Check(name, PROBLEM, f"{folder} does not exist", "make install (or start "
                     "dots-policyd under systemd, whose StateDirectory= creates it)")
    try:
        owner_uid = pwd.getpwnam(POLICYD_USER).pw_uid
    except KeyError:
        return Check(name, PROBLEM, f"the user {POLICYD_USER} does not exist", "make install")
    target = path if os.path.exists(path) else folder
    st = os.stat(target)
    writable = st.st_uid == owner_uid and bool(st.st_mode & 0o200) if os.geteuid() == 0 \
        else os.access(target, os.W_OK)
    if not writable:
        return Check(name, PROBLEM, f"{target} is not writable by {POLICYD_USER}",
                     f"chown -R {POLICYD_USER}: {folder}")
    if not os.path.exists(path):
        return Check(name, WARNING, f"{path} does not exist yet (the policy daemon creates it "
                     "when it first starts)")
    return Check(name, OK, f"{path} is writable by {POLICYD_USER}")


def check_events(client: FamilyClient) -> list[Check]:
    """Events flowing and lost: only the daemon knows, and only if its API
    says (HEALTH_METHOD); otherwise say that it cannot be told."""
    try:
        if not client.name_has_owner(BUS_NAME):
            return [Check("events", UNKNOWN, "the policy daemon is not running, so it cannot "
                          "say whether events arrive")]
        node = ET.fromstring(client.introspect())
    except (CliError, ET.ParseError):
        return [Check("events", UNKNOWN, "cannot ask the policy daemon")]
    methods = {m.get("name") for m in node.iter("method")}
    if HEALTH_METHOD not in methods:
        return [Check("events flowing", UNKNOWN, "the policy daemon does not report whether "
                      "events arrive from the collector (its API has no such method yet)"),
                Check("events lost", UNKNOWN, "the policy daemon does not report lost events "
                      "(its API has no such method yet)")]
    try:
        health = client.call(HEALTH_METHOD)[0]
    except CliError as exc:
        return [Check("events", UNKNOWN, f"the policy daemon would not say: {exc.message}")]
    out = []
    if health.get("collector_connected") is False:
        out.append(Check("events flowing", PROBLEM, "the policy daemon hears nothing from the "
                         "collector", "systemctl restart dots-collector"))
    else:
        out.append(Check("events flowing", OK,
                         f"{health.get('events_stored', 0)} events stored since the daemon started"))
    out += trust_checks(health)
    lost = int(health.get("events_lost", 0))
    if lost < 0:
        out.append(Check("events lost", UNKNOWN, "the collector could not be asked"))
    else:
        out.append(Check("events lost", WARNING if lost else OK,
                         f"{lost} events lost (the ring buffers overflowed)" if lost else "none lost",
                         "raise the ring buffer size of the collector" if lost else ""))
    out += [Check(*line) for line in household_checks(health)]
    return out


def trust_checks(health: dict[str, Any]) -> list[Check]:
    """What the daemon refused to believe, and what it could not do."""
    out = []
    rejected = int(health.get("signals_rejected", 0))
    if rejected:
        by = health.get("signals_rejected_by") or {}
        detail = ", ".join(f"{reason}: {n}" for reason, n in sorted(by.items()))
        out.append(Check("forged signals", WARNING,
                         f"{rejected} signals from senders that may not send them were ignored"
                         f"{f' ({detail})' if detail else ''}",
                         "someone on this machine is trying to fool the policy daemon; "
                         "see its log (journalctl -u dots-policyd)"))
    elif "signals_rejected" in health:
        out.append(Check("forged signals", OK, "none"))
    malformed = int(health.get("malformed_batches", 0))
    if malformed:
        out.append(Check("malformed batches", WARNING,
                         f"{malformed} batches from the collector could not be read",
                         "update dots-collector and dots-policyd to the same version"))
    if health.get("storage_failing"):
        out.append(Check("storage", PROBLEM, "screen time cannot be written to the database "
                         "(counted in memory until it can)", "free disk space for dots-policyd"))
    failures = int(health.get("logind_failures", 0))
    if failures:
        out.append(Check("logind", WARNING, f"{failures} calls to logind failed (sessions were "
                         "ended by killing the child's processes instead)",
                         "journalctl -u systemd-logind"))
    return out


def run_checks(client: FamilyClient) -> list[Check]:
    checks = [check_bpf(), *check_mounts(), check_bcc(), *check_bus(client), *check_files(),
              check_units(), check_database(), *check_events(client)]
    return checks
