"""`make install` / `make uninstall` (scripts/install-system.sh,
scripts/uninstall-system.sh), the systemd units, the D-Bus activation
files, the autostart entry and the default collector configuration.

Three installs, about 20 s each (building the venv and byte-compiling it):
a staged one (``DESTDIR``, ``PREFIX=/usr/local``) shared by most tests, and
a real one (no ``DESTDIR``) into a temporary ``PREFIX`` done twice (the
second run checks that installing is idempotent). The real one points every
system directory (units, D-Bus, polkit, /etc, /var) into the temporary
directory too, so the tests never touch the machine's own configuration;
only the ``dots-policyd`` user and ``dots-parents`` group are created when
missing, as scripts/install.sh does.

With CI=true, a missing ``systemd-analyze`` (Debian package ``systemd``),
``unshare`` or root is a failure, never a skip (tests/conftest.py's rule).
"""

from __future__ import annotations

import grp
import marshal
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, wait_for

IN_CI = os.environ.get("CI", "").lower() == "true"   # tests/conftest.py's convention
FINAL = "/usr/local/lib/dots-family"
PROGRAMS = {"bin/dotsctl": "dotsctl", "sbin/dots-collector": "dots-collector",
            "libexec/dots-policyd": "dots-policyd"}
SYSTEM_DIRS = ("SYSCONFDIR", "LOCALSTATEDIR", "SYSTEMDUNITDIR", "DBUSDATADIR", "POLKITDATADIR",
               "AUTOSTARTDIR")


def need(ok: bool, reason: str) -> None:
    if not ok:
        if IN_CI:
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)


def user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def make(target: str, **variables: str) -> subprocess.CompletedProcess:
    argv = ["make", "--no-print-directory", "-C", str(REPO), target,
            *(f"{k}={v}" for k, v in variables.items())]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def staged_vars(destdir: Path) -> dict[str, str]:
    """The defaults, spelled out (an environment variable must not leak in)."""
    return {"DESTDIR": str(destdir), "PREFIX": "/usr/local", "SYSCONFDIR": "/etc",
            "LOCALSTATEDIR": "/var", "SYSTEMDUNITDIR": "/lib/systemd/system",
            "DBUSDATADIR": "/usr/share/dbus-1", "POLKITDATADIR": "/usr/share/polkit-1",
            "AUTOSTARTDIR": "/etc/xdg/autostart"}


def project_scripts() -> set[str]:
    with open(REPO / "pyproject.toml", "rb") as f:
        return set(tomllib.load(f)["project"]["scripts"])


def expected_programs() -> dict[str, str]:
    programs = dict(PROGRAMS)
    if "dots-agent" in project_scripts():
        programs["bin/dots-agent"] = "dots-agent"
    return programs


def data_files() -> dict[str, Path]:
    """Installed path (relative to the root) -> source file, for PREFIX=/usr/local."""
    files = {f"lib/systemd/system/{p.name}": p for p in sorted((REPO / "systemd").glob("*.service"))}
    files |= {f"usr/share/dbus-1/system.d/{p.name}": p
              for p in sorted((REPO / "dbus").glob("org.dots.*.conf"))}
    files |= {f"usr/share/dbus-1/system-services/{p.name}": p
              for p in sorted((REPO / "dbus").glob("org.dots.*.service"))}
    files |= {f"usr/share/polkit-1/actions/{p.name}": p for p in sorted((REPO / "polkit").glob("*.policy"))}
    files |= {f"usr/share/polkit-1/rules.d/{p.name}": p for p in sorted((REPO / "polkit").glob("*.rules"))}
    files["etc/xdg/autostart/dots-agent.desktop"] = REPO / "dots_cli/data/dots-agent.desktop"
    files["etc/dots/collector.toml"] = REPO / "etc/collector.toml"
    return files


def all_entries(root: Path) -> set[str]:
    """Every file and symlink under root, relative."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            out.add(os.path.relpath(os.path.join(dirpath, name), root))
    return out


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit / desktop / D-Bus service file: section -> key -> values."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key, [])
    assert len(values) == 1, f"{key}= given {len(values)} times: {values}"
    return values[0]


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("stage")
    r = make("install", **staged_vars(root))
    yield root, r.stdout + r.stderr


# --- the staged install (DESTDIR, PREFIX=/usr/local) --------------------------------


def test_staged_install_lays_out_every_file(staged: tuple[Path, str]) -> None:
    root, output = staged
    for rel, src in data_files().items():
        path = root / rel
        assert path.is_file() and not path.is_symlink(), f"{rel} not installed"
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, f"{rel}: mode {oct(path.stat().st_mode)}"
        if rel.endswith(".desktop"):
            assert "Exec=/usr/local/bin/dots-agent" in path.read_text().splitlines()
        else:   # PREFIX=/usr/local: installed as shipped
            assert path.read_bytes() == src.read_bytes(), f"{rel} differs from {src}"
    assert list((REPO / "polkit").glob("*.policy")), "no polkit/*.policy to install"

    for rel, name in expected_programs().items():
        link = root / "usr/local" / rel
        assert link.is_symlink(), f"{rel} is not a symlink into the venv"
        assert os.readlink(link) == f"../lib/dots-family/bin/{name}"
        target = link.resolve()
        assert target.is_relative_to(root) and target.is_file(), f"{rel} -> {target}"
        assert stat.S_IMODE(target.stat().st_mode) & 0o111 == 0o111, f"{rel} not executable"

    venv = root / FINAL.lstrip("/")
    assert (venv / "pyvenv.cfg").is_file()
    assert os.path.realpath(venv / "bin/python").startswith("/usr/bin/python3")
    bcc = venv / "lib/python3.11/site-packages/bcc"
    assert bcc.is_symlink() and os.readlink(bcc) == "/usr/lib/python3/dist-packages/bcc"
    assert not list(venv.glob("lib/python3*/site-packages/bcc-*")), "PyPI's unrelated bcc got in"

    state = root / "var/lib/dots"
    assert state.is_dir() and stat.S_IMODE(state.stat().st_mode) == 0o750
    assert "not creating the user dots-policyd" in output
    leftovers = [p.name for p in (root / "usr/local/lib").iterdir() if p.name != "dots-family"]
    assert not leftovers, f"scratch directories left behind: {leftovers}"


def test_staged_venv_holds_the_whole_project(staged: tuple[Path, str]) -> None:
    """Every module and eBPF source of the source tree is in the installed
    package (pyproject.toml's package list and package data must keep up)."""
    root, _ = staged
    site = root / FINAL.lstrip("/") / "lib/python3.11/site-packages"
    missing = []
    for package in ("dots_collector", "dots_policyd", "dots_cli"):
        for src in (REPO / package).rglob("*"):
            if src.suffix in (".py", ".c", ".h") and "__pycache__" not in src.parts:
                rel = src.relative_to(REPO)
                if not (site / rel).is_file():
                    missing.append(str(rel))
    assert not missing, f"not installed (add them to pyproject.toml): {sorted(missing)}"


def test_staged_venv_is_written_for_its_final_path(staged: tuple[Path, str]) -> None:
    root, _ = staged
    venv = root / FINAL.lstrip("/")
    found = subprocess.run(["grep", "-rlF", str(root), str(venv)], capture_output=True, text=True)
    assert found.stdout == "", f"the staging path is written in:\n{found.stdout}"
    assert re.search(r"^command = .* /usr/local/lib/dots-family$",
                     (venv / "pyvenv.cfg").read_text(), re.M)
    for name in ("dotsctl", "dots-collector", "dots-policyd"):
        first = (venv / "bin" / name).read_text().splitlines()[0]
        assert first == f"#!{FINAL}/bin/python", f"{name}: {first}"
    assert f'VIRTUAL_ENV="{FINAL}"' in (venv / "bin/activate").read_text() \
        or f"VIRTUAL_ENV={FINAL}" in (venv / "bin/activate").read_text()
    pycs = list((venv / "lib/python3.11/site-packages/dots_collector/__pycache__").glob("config.*.pyc"))
    assert pycs, "the project was not byte-compiled"
    code = marshal.loads(pycs[0].read_bytes()[16:])
    assert code.co_filename == f"{FINAL}/lib/python3.11/site-packages/dots_collector/config.py"


def test_staged_programs_run_from_their_final_path(staged: tuple[Path, str]) -> None:
    """The staged /usr/local, bind-mounted on /usr/local in a private mount
    namespace, is what the target machine will have: its programs run, also
    as the unprivileged dots-policyd."""
    root, _ = staged
    need(os.geteuid() == 0, "mounting in a private namespace needs root")
    need(shutil.which("unshare") is not None, "unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, text=True)
    need(probe.returncode == 0, f"cannot unshare the mount namespace: {probe.stderr.strip()}")
    need(user_exists("dots-policyd"), "the user dots-policyd is missing (scripts/install.sh creates it)")
    script = r"""
set -e
mount --bind "$1/usr/local" /usr/local
/usr/local/bin/dotsctl --help >/dev/null
/usr/local/sbin/dots-collector --help | grep -q '^usage: dots-collector'
setpriv --reuid=dots-policyd --regid=dots-policyd --clear-groups \
    /usr/local/libexec/dots-policyd --help | grep -q '^usage: dots-policyd'
/usr/local/lib/dots-family/bin/python -c 'import bcc, dots_collector.core, dots_policyd, dots_cli'
echo ran-all
"""
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c", script,
                        "bash", str(root)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "ran-all" in r.stdout, f"{r.stdout}\n{r.stderr}"


def test_staged_uninstall_keeps_database_and_modified_config(
        staged: tuple[Path, str], tmp_path: Path) -> None:
    root, _ = staged
    copy = tmp_path / "root"   # a hard-linked copy: the staged tree stays for other tests
    subprocess.run(["cp", "-al", str(root), str(copy)], check=True)
    (copy / "var/lib/dots/dots.db").write_text("history")
    conf = copy / "etc/dots/collector.toml"
    text = conf.read_text()
    conf.unlink()
    conf.write_text(text + "\nringbuf_kib_per_cpu = 256\n")

    r = make("uninstall", **staged_vars(copy))
    assert "kept /etc/dots/collector.toml: it was modified" in r.stderr
    assert all_entries(copy) == {"var/lib/dots/dots.db", "etc/dots/collector.toml"}
    make("uninstall", **staged_vars(copy))   # idempotent
    assert all_entries(copy) == {"var/lib/dots/dots.db", "etc/dots/collector.toml"}


BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={socket}</listen>
  <servicedir>{services}</servicedir>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="org.freedesktop.DBus"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
  <includedir>{policies}</includedir>
</busconfig>
"""


@pytest.mark.bus
def test_installed_bus_files_load_in_dbus_daemon(staged: tuple[Path, str]) -> None:
    """A dbus-daemon reading the installed policy and activation files
    starts (a malformed policy file would stop it) and lists both names
    as activatable (a malformed activation file is skipped)."""
    root, _ = staged
    work = Path(tempfile.mkdtemp(prefix="dots-install-bus-"))   # short: a socket path has 108 bytes
    socket = work / "bus"
    config = work / "bus.conf"
    config.write_text(BUS_CONFIG.format(socket=socket,
                                        services=root / "usr/share/dbus-1/system-services",
                                        policies=root / "usr/share/dbus-1/system.d"))
    daemon = subprocess.Popen(["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile",
                               "--nosyslog"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    try:
        wait_for(lambda: socket.exists() or daemon.poll() is not None, what="the bus socket")
        assert daemon.poll() is None, f"dbus-daemon refused the installed files:\n{daemon.stderr.read()}"
        r = subprocess.run(["dbus-send", f"--bus=unix:path={socket}", "--print-reply",
                            "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus.ListActivatableNames"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        names = set(re.findall(r'string "([^"]+)"', r.stdout))
        assert {"org.dots.Collector1", "org.dots.Family1"} <= names, r.stdout
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


# --- systemd-analyze verify ---------------------------------------------------------


def systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    need(tool is not None, "systemd-analyze is not installed (Debian package systemd)")
    return tool


def verify_root(staged_root: Path, where: Path) -> Path:
    """The staged tree plus this machine's own units (dbus.socket,
    sysinit.target, ...), for `systemd-analyze verify --root=`: it resolves
    both ExecStart= and the units' dependencies inside the root."""
    vroot = where / "vroot"
    subprocess.run(["cp", "-al", str(staged_root), str(vroot)], check=True)
    seen = set()
    for d in ("/usr/lib/systemd/system", "/lib/systemd/system"):
        real = os.path.realpath(d)
        if os.path.isdir(real) and real not in seen:
            seen.add(real)
            shutil.copytree(real, vroot / real.lstrip("/"), symlinks=True, dirs_exist_ok=True)
    return vroot


def test_installed_units_pass_systemd_analyze_verify(staged: tuple[Path, str], tmp_path: Path) -> None:
    tool = systemd_analyze()
    vroot = verify_root(staged[0], tmp_path)
    units = ["/lib/systemd/system/dots-collector.service", "/lib/systemd/system/dots-policyd.service"]
    r = subprocess.run([tool, "verify", f"--root={vroot}", *units], capture_output=True, text=True)
    assert r.returncode == 0 and (r.stdout + r.stderr).strip() == "", \
        f"systemd-analyze verify ({r.returncode}):\n{r.stdout}{r.stderr}"

    # the check is not vacuous: a bad unit in the same root is reported
    bad = vroot / "lib/systemd/system/dots-bad.service"
    bad.write_text((vroot / units[0].lstrip("/")).read_text()
                   .replace("ExecStart=/usr/local/sbin/dots-collector",
                            "ExecStart=/usr/local/sbin/dots-missing\nProtectSytem=strict"))
    r = subprocess.run([tool, "verify", f"--root={vroot}", "/lib/systemd/system/dots-bad.service"],
                       capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert "dots-missing" in out and "ProtectSytem" in out, out


# --- a real install into a temporary PREFIX (no DESTDIR) ------------------------------


@pytest.fixture
def scratch() -> Iterator[Path]:
    # world-traversable (pytest's own tmp dirs are 0700): dots-policyd runs from it
    d = Path(tempfile.mkdtemp(prefix="dots-install-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_real_install_into_a_temporary_prefix(scratch: Path) -> None:
    need(os.geteuid() == 0, "a real install needs root")
    prefix = scratch / "prefix"
    variables = {"DESTDIR": "", "PREFIX": str(prefix), "SYSCONFDIR": str(scratch / "etc"),
                 "LOCALSTATEDIR": str(scratch / "var"), "SYSTEMDUNITDIR": str(scratch / "units"),
                 "DBUSDATADIR": str(scratch / "dbus-1"), "POLKITDATADIR": str(scratch / "polkit-1"),
                 "AUTOSTARTDIR": str(scratch / "etc/xdg/autostart")}
    out = make("install", **variables).stderr
    assert "is not a directory systemd reads: the units are not enabled" in out

    # users, group, state directory
    policyd = pwd.getpwnam("dots-policyd")
    grp.getgrnam("dots-parents")
    state = scratch / "var/lib/dots"
    st = state.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (policyd.pw_uid, policyd.pw_gid, 0o750)

    # a second install (an upgrade) keeps the database and the configuration
    (state / "dots.db").write_text("history")
    manifest = (prefix / "lib/dots-family/install-manifest").read_text()
    make("install", **variables)
    assert (state / "dots.db").read_text() == "history"
    assert (prefix / "lib/dots-family/install-manifest").read_text() == manifest
    assert [p.name for p in (prefix / "lib").iterdir()] == ["dots-family"]

    # the installed programs run, from where they were installed
    for rel in ("bin/dotsctl", "sbin/dots-collector"):
        r = subprocess.run([str(prefix / rel), "--help"], capture_output=True, text=True, timeout=120,
                           env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        assert r.returncode == 0, f"{rel} --help ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        assert "usage" in r.stdout.lower()
    r = subprocess.run(["setpriv", "--reuid=dots-policyd", "--regid=dots-policyd", "--clear-groups",
                        str(prefix / "libexec/dots-policyd"), "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"dots-policyd --help as dots-policyd:\n{r.stdout}\n{r.stderr}"
    r = subprocess.run([str(prefix / "lib/dots-family/bin/python"), "-c", "import bcc"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    # units and activation files name the programs of this PREFIX
    collector = unit(scratch / "units/dots-collector.service")
    assert one(collector["Service"], "ExecStart") == f"{prefix}/sbin/dots-collector"
    assert one(unit(scratch / "units/dots-policyd.service")["Service"], "ExecStart") \
        == f"{prefix}/libexec/dots-policyd"
    assert one(unit(scratch / "dbus-1/system-services/org.dots.Family1.service")["D-BUS Service"],
               "Exec") == f"{prefix}/libexec/dots-policyd"
    assert one(unit(scratch / "etc/xdg/autostart/dots-agent.desktop")["Desktop Entry"],
               "TryExec") == f"{prefix}/bin/dots-agent"
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify", *map(str, sorted((scratch / "units").iterdir()))],
                           capture_output=True, text=True)
        assert r.returncode == 0 and (r.stdout + r.stderr).strip() == "", r.stdout + r.stderr

    # uninstall: everything goes but the database (the configuration was not modified)
    make("uninstall", **variables)
    assert all_entries(scratch) == {"var/lib/dots/dots.db"}


# --- the files themselves -----------------------------------------------------------

COLLECTOR_CAPS = {"CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_NET_ADMIN", "CAP_KILL",
                  "CAP_SETUID", "CAP_SETGID", "CAP_SYS_RESOURCE", "CAP_DAC_READ_SEARCH",
                  "CAP_SYS_PTRACE"}


def test_collector_unit_least_privilege() -> None:
    u = unit(REPO / "systemd/dots-collector.service")
    s = u["Service"]
    assert one(s, "Type") == "dbus" and one(s, "BusName") == "org.dots.Collector1"
    assert "User" not in s   # root, limited by the bounding set
    assert set(one(s, "CapabilityBoundingSet").split()) == COLLECTOR_CAPS
    for key, value in {"ProtectSystem": "strict", "ReadWritePaths": "/sys/fs/bpf",
                       "ProtectHome": "read-only", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
                       "Restart": "on-failure"}.items():
        assert one(s, key) == value, key
    assert "ProtectKernelModules" not in s   # it would hide the kernel headers from bcc
    assert one(u["Install"], "WantedBy") == "multi-user.target"


def test_policyd_unit_least_privilege() -> None:
    u = unit(REPO / "systemd/dots-policyd.service")
    s = u["Service"]
    assert one(s, "Type") == "dbus" and one(s, "BusName") == "org.dots.Family1"
    for key, value in {"User": "dots-policyd", "Group": "dots-policyd", "CapabilityBoundingSet": "",
                       "ProtectSystem": "strict", "StateDirectory": "dots",
                       "StateDirectoryMode": "0750", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                       "ProtectHome": "yes", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
                       "SystemCallFilter": "@system-service", "Restart": "on-failure"}.items():
        assert one(s, key) == value, key
    assert one(u["Unit"], "After") == "dots-collector.service"
    assert one(u["Unit"], "Wants") == "dots-collector.service"
    assert one(u["Install"], "WantedBy") == "multi-user.target"


@pytest.mark.parametrize("name, unit_name, user", [
    ("org.dots.Collector1", "dots-collector.service", "root"),
    ("org.dots.Family1", "dots-policyd.service", "dots-policyd"),
])
def test_activation_file_matches_its_unit(name: str, unit_name: str, user: str) -> None:
    act = unit(REPO / f"dbus/{name}.service")["D-BUS Service"]
    svc = unit(REPO / f"systemd/{unit_name}")["Service"]
    assert one(act, "Name") == name == one(svc, "BusName")
    assert one(act, "Exec") == one(svc, "ExecStart")
    assert one(act, "User") == user == svc.get("User", ["root"])[0]
    assert one(act, "SystemdService") == unit_name


def test_autostart_entry() -> None:
    path = REPO / "dots_cli/data/dots-agent.desktop"
    e = unit(path)["Desktop Entry"]
    assert one(e, "Type") == "Application"
    assert one(e, "Exec") == "dots-agent" and one(e, "TryExec") == "dots-agent"
    assert one(e, "NoDisplay") == "true"
    if shutil.which("desktop-file-validate"):
        r = subprocess.run(["desktop-file-validate", str(path)], capture_output=True, text=True)
        assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def test_default_collector_config_documents_the_defaults() -> None:
    """etc/collector.toml changes nothing as shipped, and each commented-out
    `# key = value` line is the built-in default of a real setting: all of
    them together equal the defaults, and none is missing."""
    from dots_collector.config import CollectorConfig, load_config

    path = REPO / "etc/collector.toml"
    text = path.read_text()
    assert tomllib.loads(text) == {}
    assert load_config(path, {}) == CollectorConfig()
    documented = tomllib.loads("\n".join(re.findall(r"^# (\w+ = .*)$", text, re.M)))
    assert set(documented) == set(CollectorConfig.model_fields), \
        f"undocumented: {set(CollectorConfig.model_fields) - set(documented)}; " \
        f"unknown: {set(documented) - set(CollectorConfig.model_fields)}"
    assert CollectorConfig.model_validate(documented) == CollectorConfig()
