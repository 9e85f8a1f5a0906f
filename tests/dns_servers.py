"""Local DNS servers standing in for the internet's (tests and bench only):
an authoritative server on a loopback address, UDP and TCP, answering A
and AAAA from a dict that a test may change while it runs."""

from __future__ import annotations

import socket
import socketserver
import struct
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class FakeZone:
    """name -> addresses (both families); everything else NXDOMAIN;
    ``cnames``: name -> target (answered with the chain)."""

    def __init__(self, records: dict[str, list[str]], ttl: int = 600,
                 cnames: dict[str, str] | None = None) -> None:
        self.records = dict(records)
        self.cnames = dict(cnames or {})
        self.ttl = ttl
        self.queries: list[str] = []
        self.lock = threading.Lock()

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        with self.lock:
            self.queries.append(name)
            target = name
            if name in self.cnames:
                target = self.cnames[name]
                response.answer.append(dns.rrset.from_text(name + ".", self.ttl, "IN", "CNAME",
                                                           target + "."))
            addresses = self.records.get(target)
        if addresses is None and target == name:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        want = "AAAA" if question.rdtype == dns.rdatatype.AAAA else "A"
        found = [a for a in addresses or [] if (":" in a) == (want == "AAAA")]
        if question.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA) and found:
            response.answer.append(dns.rrset.from_text(target + ".", self.ttl, "IN", want, *found))
        return response.to_wire()


class _Udp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(self.server.zone.answer(data), self.client_address)  # type: ignore[attr-defined]


class _Tcp(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            reply = self.server.zone.answer(self.rfile.read(struct.unpack("!H", head)[0]))  # type: ignore[attr-defined]
            self.wfile.write(struct.pack("!H", len(reply)) + reply)


class _UdpServer(socketserver.ThreadingUDPServer):
    allow_reuse_address = True
    daemon_threads = True


class _TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class DnsServer:
    """A FakeZone served on host:port (UDP and TCP) from background threads."""

    def __init__(self, host: str, zone: FakeZone, port: int = 53) -> None:
        self.zone = zone
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        _UdpServer.address_family = _TcpServer.address_family = family
        self.servers = [_UdpServer((host, port), _Udp), _TcpServer((host, port), _Tcp)]
        self.port = self.servers[0].server_address[1]
        for server in self.servers:
            server.zone = zone  # type: ignore[attr-defined]
            threading.Thread(target=server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
