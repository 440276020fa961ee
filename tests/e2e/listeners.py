#!/usr/bin/env python3
"""Servers in the fake internet that only record who reached them (the transparent
test). TCP listeners answer "hello" and close; UDP sockets echo each datagram, except on
port 53, where they answer as a resolver that knows no names (the query's ID and
question, NXDOMAIN); HTTP listeners answer every request of a keep-alive connection
with 200 and the Host it named. Every contact is appended to the log as one JSON line
(an HTTP one per request, with its "host"):

    {"proto": "tcp", "addr": "10.213.1.2", "port": 8443, "from": "10.213.0.1"}

    listeners.py --log contacts.jsonl --tcp 10.213.1.2@8443 --udp 10.213.1.2@443 \
        --http 10.213.1.2@80 ...
"""

import argparse
import json
import socket
import threading


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def record(log, lock, proto, addr, port, peer, **extra):
    line = {"proto": proto, "addr": addr, "port": port, "from": peer}
    line.update(extra)
    with lock:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


def serve_http_conn(conn, addr, port, peer, log, lock):
    """Requests without bodies, one after another on one connection."""
    buf = b""
    with conn:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            hosts = [
                line.split(b":", 1)[1].strip().decode("latin-1")
                for line in head.split(b"\r\n")[1:]
                if line.lower().startswith(b"host:")
            ]
            host = ",".join(hosts)
            record(log, lock, "http", addr, port, peer, host=host)
            body = ("hello %s\n" % host).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def serve_http(sock, addr, port, log, lock):
    while True:
        conn, peer = sock.accept()
        threading.Thread(
            target=serve_http_conn, args=(conn, addr, port, peer[0], log, lock), daemon=True
        ).start()


def serve_tcp(sock, addr, port, log, lock):
    while True:
        conn, peer = sock.accept()
        record(log, lock, "tcp", addr, port, peer[0])
        try:
            conn.sendall(b"hello\n")
        finally:
            conn.close()


def serve_udp(sock, addr, port, log, lock):
    while True:
        data, peer = sock.recvfrom(4096)
        record(log, lock, "udp", addr, port, peer[0])
        if port == 53 and len(data) >= 12:
            # Header: same ID, QR=1 RD=1 RA=1 RCODE=3 (NXDOMAIN), the question echoed.
            reply = data[:2] + b"\x81\x83" + data[4:6] + b"\x00\x00" * 3 + data[12:]
        else:
            reply = data
        sock.sendto(reply, peer)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", required=True)
    parser.add_argument("--tcp", action="append", default=[])
    parser.add_argument("--udp", action="append", default=[])
    parser.add_argument("--http", action="append", default=[])
    args = parser.parse_args()
    lock = threading.Lock()
    threads = []
    servers = {"tcp": serve_tcp, "udp": serve_udp, "http": serve_http}
    for proto, specs in (("tcp", args.tcp), ("udp", args.udp), ("http", args.http)):
        for spec in specs:
            addr, port = spec.rsplit("@", 1)
            port = int(port)
            kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
            sock = socket.socket(family(addr), kind)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((addr, port))
            if proto != "udp":
                sock.listen(16)
            target = servers[proto]
            t = threading.Thread(target=target, args=(sock, addr, port, args.log, lock), daemon=True)
            t.start()
            threads.append(t)
    print("listeners ready", flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
