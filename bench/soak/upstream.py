#!/usr/bin/env python3
"""The soak test's TLS upstream: an HTTP/1.1 server (asyncio + ssl, standard library
only) that checks every injection it receives and counts what it saw.

Each request the load client sends carries, besides what the proxy injects:

  X-Soak-Kind:    the kind of request (valid, reflect, up_500, ...)
  X-Soak-Expect:  `header=sha256hex(expected value)` pairs, comma separated: what the
                  proxy must have injected (hashes, so no plaintext token travels in a
                  header the proxy could log)
  X-Soak-Body:    sha256hex of the request body (POST), checked on arrival

A request is *verified* when every expected header arrived with exactly the expected
value, no Proxy-* header arrived, and the body is intact; anything else is counted as a
mismatch (a wrong injection). Routes:

  /check              200, verdict in `X-Soak-Verdict` and the body
  /reflect            200, echoes the injected values (the reflection guard must mask them)
  /stream?n=N&ms=M    200, N chunks M ms apart (chunked)
  /fault/500          500
  /fault/reset        reads the request, then resets the connection (RST)
  /fault/slow?ms=M    answers after M ms (longer than UPSTREAM_RESPONSE_TIMEOUT: 504)
  /__soak/stats       the counters, as JSON (the load client asks directly, not via proxy)

Any query may add `delay_ms=M` to answer late.

usage: upstream.py --port P --cert CHAIN.pem --key KEY.pem [--host 127.0.0.1]
"""

import argparse
import asyncio
import collections
import hashlib
import json
import signal
import socket
import ssl
import struct
import sys
import urllib.parse

STATS = {
    "received": collections.Counter(),  # by X-Soak-Kind
    "verified": 0,
    "mismatch": 0,
    "mismatch_kinds": collections.Counter(),
    "proxy_header_leaks": 0,
    "body_mismatch": 0,
    "unexpected_kind": 0,  # requests that should never reach an upstream
    "connections": 0,
    "open": 0,
    "bad_requests": 0,
}

# Kinds the proxy must refuse before dialling: any arrival is a failure.
NEVER_FORWARDED = {
    "bad_b64",
    "bad_seal",
    "no_secret",
    "wrong_auth",
    "wrong_host",
    "rate_limited",
    "garbage",
    "burst_407",
    "burst_reuse_407",
}


class BadRequest(Exception):
    pass


async def read_request(reader):
    """(method, target, headers as list of (lower name, value), body) or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise BadRequest("truncated head") from e
        return None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError as e:
        raise BadRequest("request line") from e
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    hmap = {}
    for k, v in headers:
        hmap.setdefault(k, v)
    body = b""
    if "chunked" in hmap.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                # trailers until an empty line
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif "content-length" in hmap:
        n = int(hmap["content-length"])
        if n:
            body = await reader.readexactly(n)
    return method, target, headers, hmap, body


def verify(headers, hmap, body):
    """Check the injection; returns (ok, values injected) and counts the outcome."""
    kind = hmap.get("x-soak-kind", "")
    STATS["received"][kind] += 1
    if kind in NEVER_FORWARDED:
        STATS["unexpected_kind"] += 1
    ok = True
    if any(k.startswith("proxy-") for k, _ in headers):
        STATS["proxy_header_leaks"] += 1
        ok = False
    expect = hmap.get("x-soak-expect", "")
    injected = []
    for pair in filter(None, (p.strip() for p in expect.split(","))):
        name, _, digest = pair.partition("=")
        values = [v for k, v in headers if k == name]
        injected.extend(values)
        if len(values) != 1 or hashlib.sha256(values[0].encode("latin-1")).hexdigest() != digest:
            ok = False
    if not expect:
        ok = False
    want_body = hmap.get("x-soak-body")
    if want_body is not None and hashlib.sha256(body).hexdigest() != want_body:
        STATS["body_mismatch"] += 1
        ok = False
    if ok:
        STATS["verified"] += 1
    else:
        STATS["mismatch"] += 1
        STATS["mismatch_kinds"][kind] += 1
    return ok, injected


def response(status, reason, body, headers=()):
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


async def handle(reader, writer):
    STATS["connections"] += 1
    STATS["open"] += 1
    try:
        while True:
            try:
                req = await read_request(reader)
            except (BadRequest, ValueError, asyncio.LimitOverrunError):
                STATS["bad_requests"] += 1
                writer.write(response(400, "Bad Request", b"bad request\n", [("Connection", "close")]))
                return
            if req is None:
                return
            method, target, headers, hmap, body = req
            url = urllib.parse.urlsplit(target)
            path = url.path
            query = dict(urllib.parse.parse_qsl(url.query))
            if path == "/__soak/stats":
                payload = json.dumps(STATS, sort_keys=True).encode()
                writer.write(response(200, "OK", payload, [("Content-Type", "application/json")]))
                await writer.drain()
                continue
            ok, injected = verify(headers, hmap, body)
            verdict = "ok" if ok else "mismatch"
            if "delay_ms" in query:
                await asyncio.sleep(int(query["delay_ms"]) / 1000)
            vh = [("X-Soak-Verdict", verdict)]
            if path == "/check":
                out = response(200, "OK", json.dumps({"verdict": verdict}).encode(), vh)
            elif path == "/reflect":
                # Leak the injected values back, raw and in JSON: the guard must mask them.
                text = "reflect " + " | ".join(injected) + " " + json.dumps({"seen": injected}) + "\n"
                out = response(200, "OK", text.encode("latin-1"), vh)
            elif path == "/stream":
                n, ms = int(query.get("n", "5")), int(query.get("ms", "100"))
                writer.write(
                    (
                        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                        f"Content-Type: text/plain\r\nX-Soak-Verdict: {verdict}\r\n\r\n"
                    ).encode()
                )
                for i in range(n):
                    chunk = f"chunk {i}\n".encode()
                    writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    await writer.drain()
                    if i + 1 < n:
                        await asyncio.sleep(ms / 1000)
                writer.write(b"0\r\n\r\n")
                await writer.drain()
                continue
            elif path == "/fault/500":
                out = response(500, "Internal Server Error", b"upstream failure\n", vh)
            elif path == "/fault/reset":
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            elif path == "/fault/slow":
                await asyncio.sleep(int(query.get("ms", "5000")) / 1000)
                out = response(200, "OK", b"too late\n", vh)
            else:
                out = response(404, "Not Found", b"no such route\n", vh)
            writer.write(out)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, OSError):
        pass
    finally:
        STATS["open"] -= 1
        try:
            writer.close()
        except Exception:  # noqa: BLE001 - the peer may be long gone
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    args = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])
    server = await asyncio.start_server(
        handle,
        args.host,
        args.port,
        ssl=ctx,
        backlog=4096,
        limit=1 << 20,
        ssl_handshake_timeout=120,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"upstream listening on {args.host}:{args.port}", file=sys.stderr, flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
