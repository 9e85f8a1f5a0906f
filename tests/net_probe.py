"""A probe run as a test user: DNS questions (UDP or TCP, to any server and
port) and connection attempts, one result per step, as JSON."""

from __future__ import annotations

import json
import subprocess

from tests.helpers import VENV_PYTHON, run_as

#: as a test user: run each step, print one result per step.
#: ["dns", server, port, name, rdtype, "udp"|"tcp"] -> [rcode text, addresses]
#: ["tcp"|"udp-connect"|"udp"|"tfo", address, port] -> errno (0 = success)
#: ["peer", address, port] -> [address, port] getpeername() gives after connect(), or errno
PROBE = r"""
import json, socket, sys
import dns.message, dns.query, dns.rcode
out = []
for step in json.loads(sys.argv[1]):
    if step[0] == "dns":
        _, server, port, name, rdtype, proto = step
        q = dns.message.make_query(name, rdtype)
        try:
            fn = dns.query.udp if proto == "udp" else dns.query.tcp
            r = fn(q, server, port=port, timeout=5)
            out.append([dns.rcode.to_text(r.rcode()),
                        sorted(x.address for rr in r.answer for x in rr if hasattr(x, "address"))])
        except Exception as e:
            out.append(["error " + type(e).__name__, []])
        continue
    if step[0] == "peer":  # where a TCP connection says it goes (getpeername)
        _, addr, port = step
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
        try:
            s.connect((addr, port))
            out.append(list(s.getpeername()[:2]))
        except OSError as e:
            out.append(e.errno)
        s.close()
        continue
    kind, addr, port = step
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM)
    s.settimeout(5)
    try:
        if kind == "udp":
            s.sendto(b"x", (addr, port))
        elif kind == "tfo":  # TCP fast open: the connect happens inside sendto()
            s.sendto(b"x", socket.MSG_FASTOPEN, (addr, port))
        else:
            s.connect((addr, port))
        out.append(0)
    except OSError as e:
        out.append(e.errno)
    finally:
        s.close()
print(json.dumps(out))
"""


def probe(user: str | None, steps: list[list]) -> list:
    """The results of ``steps`` as ``user`` (None: root, in a subprocess too)."""
    argv = [VENV_PYTHON, "-c", PROBE, json.dumps(steps)]
    if user is None:
        done = subprocess.run(argv, capture_output=True, text=True)
    else:
        done = run_as(user, argv)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
