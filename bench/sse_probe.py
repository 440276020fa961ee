#!/usr/bin/env python3
"""Time to the first server-sent event, over one keep-alive connection: N requests one
after another, each timed from sending the request to receiving the first event's bytes
(not just the response headers), then read to the end of the chunked body.

usage: sse_probe.py direct HOST PORT CA N HEADERS_FILE     (TLS straight to the upstream)
       sse_probe.py proxy  HOST PORT -  N HEADERS_FILE     (absolute-form via a proxy)
Prints one JSON object: the timings in microseconds."""
import json
import socket
import ssl
import statistics
import sys
import time

mode, host, port, ca, count, headers_file = sys.argv[1:7]
port, count = int(port), int(count)
extra = [l.strip() for l in open(headers_file) if l.strip()]

sock = socket.create_connection(("127.0.0.1", port))
sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if mode == "direct":
    ctx = ssl.create_default_context(cafile=ca)
    sock = ctx.wrap_socket(sock, server_hostname=host)
    target = "/sse"
else:
    target = f"http://{host}/sse"
request = "\r\n".join([f"GET {target} HTTP/1.1", f"Host: {host}", *extra, "", ""]).encode()

buf = b""
samples = []
for i in range(count + 3):  # the first three warm the connection and the proxy's pool
    started = time.perf_counter()
    sock.sendall(request)
    first = None
    while True:
        data = sock.recv(65536)
        if not data:
            raise SystemExit("connection closed")
        buf += data
        if first is None and b"data: first" in buf:
            first = time.perf_counter()
        if b"\r\n0\r\n\r\n" in buf:
            if not buf.startswith(b"HTTP/1.1 200"):
                raise SystemExit("unexpected response: " + buf[:200].decode("latin-1"))
            buf = b""
            break
    if i >= 3:
        samples.append((first - started) * 1e6)

samples.sort()
print(json.dumps({
    "n": len(samples),
    "p50_us": statistics.median(samples),
    "p90_us": samples[int(len(samples) * 0.9) - 1],
    "min_us": samples[0],
}))
