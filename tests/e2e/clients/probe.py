#!/usr/bin/env python3
"""Try to reach the fake internet in the ways a sandboxed program might, and print one
JSON object: probe name -> {"ok": bool, "detail": str}. Used by the transparent test
before and after the firewall, as the unprivileged agent user.

    probe.py NAME=tcp:ADDR:PORT NAME=udp:ADDR:PORT NAME=dns:ADDR
             NAME=tls:SNI:PORT:CAFILE[:CONNECT_ADDR] NAME=http2:HOST:OTHER:ADDR ...

Addresses may be IPv6 in brackets ([fd00::1]). tcp: the server's "hello" must arrive;
udp: the datagram must come back; dns: a query must be answered with its own ID; tls: a
handshake verified against CAFILE (the detail is the certificate's issuer); http2: two
requests on one keep-alive connection to ADDR:80, the first with Host HOST, the second
with Host OTHER (the detail is both statuses, "-" for no answer).
"""

import json
import os
import socket
import ssl
import sys

TIMEOUT = 3


def split(spec):
    """'[fd00::1]:443:x' or '10.0.0.1:443:x' -> list of fields, the address unbracketed."""
    if spec.startswith("["):
        addr, rest = spec[1:].split("]", 1)
        return [addr] + rest.lstrip(":").split(":")
    return spec.split(":")


def connect(addr, port):
    return socket.create_connection((addr, int(port)), timeout=TIMEOUT)


def tcp(addr, port):
    with connect(addr, port) as s:
        data = s.recv(16)
    if not data.startswith(b"hello"):
        raise OSError("no hello: %r" % data)
    return data.decode().strip()


def udp(addr, port):
    token = os.urandom(8)
    with socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(TIMEOUT)
        s.sendto(token, (addr, int(port)))
        data, _ = s.recvfrom(64)
    if data != token:
        raise OSError("wrong echo")
    return "echoed"


def dns(addr):
    qid = os.urandom(2)
    name = b"".join(bytes([len(p)]) + p for p in b"example.com".split(b".")) + b"\x00"
    query = qid + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + name + b"\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(TIMEOUT)
        s.sendto(query, (addr, 53))
        data, _ = s.recvfrom(512)
    if data[:2] != qid:
        raise OSError("answer with another ID")
    return "answered"


def tls(sni, port, cafile, addr=None):
    ctx = ssl.create_default_context(cafile=cafile)
    with connect(addr or sni, port) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            issuer = dict(x[0] for x in s.getpeercert()["issuer"])
    return issuer.get("commonName", "?")


def status_of(s, buf):
    """One response's status; the bytes read past it. Bodies are Content-Length framed."""
    while b"\r\n\r\n" not in buf:
        data = s.recv(4096)
        if not data:
            return "-", b""
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(rest) < length:
        data = s.recv(4096)
        if not data:
            break
        rest += data
    return lines[0].split(b" ")[1].decode(), rest[length:]


def http2(host, other, addr):
    with connect(addr, 80) as s:
        statuses = []
        buf = b""
        for name in (host, other):
            s.sendall(b"GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % name.encode())
            status, buf = status_of(s, buf)
            statuses.append(status)
    return " ".join(statuses)


def main():
    results = {}
    for arg in sys.argv[1:]:
        name, spec = arg.split("=", 1)
        kind, rest = spec.split(":", 1)
        try:
            if kind == "tcp":
                detail = tcp(*split(rest))
            elif kind == "udp":
                detail = udp(*split(rest))
            elif kind == "dns":
                detail = dns(split(rest)[0])
            elif kind == "http2":
                detail = http2(*split(rest))
            elif kind == "tls":
                fields = rest.split(":", 3)
                detail = tls(*fields)
            else:
                raise ValueError("unknown probe " + kind)
            results[name] = {"ok": True, "detail": detail}
        except Exception as e:  # noqa: BLE001 - every failure is a result here
            results[name] = {"ok": False, "detail": "%s: %s" % (type(e).__name__, e)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
