#!/usr/bin/env python3
"""A resolver of the fake internet that records every query it receives (the transparent
test: the sidecar's upstream, and what the agent must never reach directly).

It listens on port 53 of each --listen address, over UDP and TCP (two-byte length
prefix, several queries per connection). A query for a --answer name gets that name's
addresses (A for the IPv4 ones, AAAA for the IPv6 ones; NOERROR with no answer for
another type), any other name NXDOMAIN. Every query is appended to the log as one JSON
line, before it is answered:

    {"name": "api.openai.com", "type": "A", "transport": "udp", "addr": "10.213.1.2",
     "from": "10.213.0.1"}

    dns_server.py --log dns.jsonl --listen 10.213.1.2 \
        --answer api.openai.com=10.213.1.2 --answer api.openai.com=fd00:213:1::2 ...

Prints "dns-server ready" once every socket is bound.
"""

import argparse
import ipaddress
import json
import socket
import struct
import threading

TYPES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT", 28: "AAAA",
         33: "SRV", 41: "OPT", 64: "SVCB", 65: "HTTPS", 255: "ANY"}
TTL = 60


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def parse_question(msg):
    """(name, qtype, end of the question) of a query; ValueError if it is malformed."""
    if len(msg) < 12:
        raise ValueError("short header")
    if struct.unpack("!H", msg[4:6])[0] < 1:
        raise ValueError("no question")
    labels, i = [], 12
    while True:
        if i >= len(msg):
            raise ValueError("truncated name")
        n = msg[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0:
            raise ValueError("compressed question name")
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "backslashreplace"))
        i += 1 + n
    if i + 4 > len(msg):
        raise ValueError("truncated question")
    qtype = struct.unpack("!H", msg[i:i + 2])[0]
    return ".".join(labels).lower(), qtype, i + 4


def answer(msg, answers):
    """The reply to one query (None for a message that is not one)."""
    try:
        name, qtype, end = parse_question(msg)
    except ValueError:
        return None, None, None
    known = answers.get(name)
    records = []
    if known is not None:
        for ip in known:
            if qtype == 1 and ip.version == 4 or qtype == 28 and ip.version == 6:
                rtype = 1 if ip.version == 4 else 28
                records.append(struct.pack("!HHHIH", 0xC00C, rtype, 1, TTL, len(ip.packed))
                               + ip.packed)
    rcode = 0 if known is not None else 3
    flags_in = struct.unpack("!H", msg[2:4])[0]
    # QR, the query's opcode and RD, AA, RA, the rcode.
    flags = 0x8000 | (flags_in & 0x7900) | 0x0400 | 0x0080 | rcode
    header = msg[:2] + struct.pack("!HHHHH", flags, 1, len(records), 0, 0)
    return header + msg[12:end] + b"".join(records), name, qtype


def record(log, lock, name, qtype, transport, addr, peer):
    line = {"name": name, "type": TYPES.get(qtype, str(qtype)), "transport": transport,
            "addr": addr, "from": peer}
    with lock:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def serve_udp(sock, addr, answers, log, lock):
    while True:
        data, peer = sock.recvfrom(65535)
        reply, name, qtype = answer(data, answers)
        if reply is None:
            continue
        record(log, lock, name, qtype, "udp", addr, peer[0])
        sock.sendto(reply, peer)


def read_exactly(conn, n):
    buf = b""
    while len(buf) < n:
        data = conn.recv(n - len(buf))
        if not data:
            return None
        buf += data
    return buf


def serve_tcp_conn(conn, addr, peer, answers, log, lock):
    with conn:
        conn.settimeout(10)
        try:
            while True:
                size = read_exactly(conn, 2)
                if size is None:
                    return
                msg = read_exactly(conn, struct.unpack("!H", size)[0])
                if msg is None:
                    return
                reply, name, qtype = answer(msg, answers)
                if reply is None:
                    return
                record(log, lock, name, qtype, "tcp", addr, peer)
                conn.sendall(struct.pack("!H", len(reply)) + reply)
        except OSError:
            return


def serve_tcp(sock, addr, answers, log, lock):
    while True:
        conn, peer = sock.accept()
        threading.Thread(target=serve_tcp_conn, args=(conn, addr, peer[0], answers, log, lock),
                         daemon=True).start()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--listen", action="append", required=True)
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--answer", action="append", default=[], help="NAME=IP")
    args = parser.parse_args()
    answers = {}
    for spec in args.answer:
        name, ip = spec.split("=", 1)
        answers.setdefault(name.lower().rstrip("."), []).append(ipaddress.ip_address(ip))
    lock = threading.Lock()
    threads = []
    for addr in args.listen:
        udp = socket.socket(family(addr), socket.SOCK_DGRAM)
        udp.bind((addr, args.port))
        tcp = socket.socket(family(addr), socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((addr, args.port))
        tcp.listen(64)
        for target, sock in ((serve_udp, udp), (serve_tcp, tcp)):
            t = threading.Thread(target=target, args=(sock, addr, answers, args.log, lock),
                                 daemon=True)
            t.start()
            threads.append(t)
    print("dns-server ready", flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
