#!/usr/bin/env python3
"""Flood a resolver with queries for random names, as an agent exfiltrating data through
DNS would, and print one JSON object: how many were sent, the answers' rcodes, how many
answers carried records, how many went unanswered, and how long it took. Used by the
transparent test, as the unprivileged agent user.

    dns_flood.py SERVER COUNT TAG DOMAIN [SOURCES]

Each query is for a distinct name, `TAG-<hex>.<hex>.DOMAIN` (long labels: what a cache
would have to hold; TAG first, so that a log that clips names still shows it), A, AAAA
or TXT in turn, over UDP. They go out in windows of WINDOW queries
in flight; a query not answered within TIMEOUT seconds of its window counts as
unanswered. With SOURCES, the queries come from that many loopback addresses
(127.78.x.y, one socket each), as an agent would send them to look like many clients.
"""

import json
import os
import selectors
import socket
import struct
import sys
import time

WINDOW = 100
TIMEOUT = 2.0
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
QTYPES = (1, 28, 16)


def query(qid, name, qtype):
    qname = b"".join(bytes([len(p)]) + p for p in name.encode().split(b".")) + b"\x00"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", qtype, 1)


def source(i):
    return "127.78.%d.%d" % (i // 250, i % 250 + 1)


def main():
    server, count, tag, domain = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    sources = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    rcodes, with_records, unanswered, sent = {}, 0, 0, 0
    started = time.monotonic()
    shared = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    shared.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    for first in range(0, count, WINDOW):
        batch = range(first, min(first + WINDOW, count))
        sel = selectors.DefaultSelector()
        socks, pending = [], set()
        for i in batch:
            if sources:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((source(i % sources), 0))
                socks.append(s)
                sel.register(s, selectors.EVENT_READ)
            else:
                s = shared
            qid = i & 0xFFFF
            name = "%s-%s.%s.%s" % (tag, os.urandom(20).hex(), os.urandom(24).hex(), domain)
            s.sendto(query(qid, name, QTYPES[i % len(QTYPES)]), (server, 53))
            pending.add(qid)
            sent += 1
        if not sources:
            sel.register(shared, selectors.EVENT_READ)
        deadline = time.monotonic() + TIMEOUT
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=max(0.0, deadline - time.monotonic())):
                try:
                    data = key.fileobj.recv(4096)
                except OSError:
                    continue
                if len(data) < 12:
                    continue
                qid, flags, _, ancount = struct.unpack("!HHHH", data[:8])
                if qid not in pending:
                    continue
                pending.discard(qid)
                rcode = RCODES.get(flags & 0xF, str(flags & 0xF))
                rcodes[rcode] = rcodes.get(rcode, 0) + 1
                with_records += ancount > 0
        unanswered += len(pending)
        sel.close()
        for s in socks:
            s.close()
    shared.close()
    print(json.dumps({
        "sent": sent,
        "rcodes": rcodes,
        "with_records": with_records,
        "unanswered": unanswered,
        "seconds": round(time.monotonic() - started, 3),
    }))


if __name__ == "__main__":
    main()
