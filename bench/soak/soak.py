#!/usr/bin/env python3
"""bench/soak/soak.py: the load and soak driver behind bench/soak/run (standard library
only; see bench/soak/README.md).

It starts the TLS upstream (upstream.py) and `tokenizer serve`, seals distinct secrets
with `tokenizer seal`, then:

  1. burst: opens --conns concurrent keep-alive connections, sends a request on each
     (all in flight at once), a second one on each (keep-alive reuse), closes them;
  2. soak: --duration seconds at --rate requests/s (open loop) with a mix of valid,
     invalid and faulty requests, each with a known expected status;
  3. checks: the upstream verified every injection, each kind got exactly its
     expected status, /v1/stats and /metrics count what was sent, RSS stayed flat,
     file descriptors came back to the baseline, and no plaintext secret appears in
     the log, the audit tail, /metrics, /v1/stats or any response the client saw;
  4. shutdown: SIGTERM with streams in flight; they must complete, new connections
     must be refused, /readyz must answer 503, and the process must exit 0.

Prints a summary and writes it to --out (markdown). Exit status 1 if any check failed.
"""

import argparse
import asyncio
import base64
import collections
import hashlib
import json
import os
import random
import re
import resource
import secrets as rnd
import signal
import socket
import ssl
import subprocess
import sys
import time

HOST = "api.soak.test"  # the only host the secrets allow; pinned to the upstream
OTHER = "other.soak.test"  # allowed by no secret, resolvable nowhere

# kind -> (weight in the soak mix, expected status, expected audit (status, decision) or
# None when the proxy's service never sees it)
KINDS = {
    "valid": (40, 200, (200, "allowed")),
    "valid_post": (8, 200, (200, "allowed")),
    "valid2": (6, 200, (200, "allowed")),
    "reflect": (4, 200, (200, "allowed")),
    "stream": (4, 200, (200, "allowed")),
    "bad_b64": (4, 400, (400, "denied")),
    "bad_seal": (3, 400, (400, "denied")),
    "no_secret": (3, 400, (400, "denied")),
    "wrong_auth": (5, 407, (407, "denied")),
    "wrong_host": (4, 400, (400, "denied")),
    "rate_limited": (4, 429, (429, "rate-limited")),
    "up_500": (4, 500, (500, "allowed")),
    "up_reset": (3, 502, (502, "error")),
    "up_slow": (2, 504, (504, "error")),
    "garbage": (2, 400, None),
    "slowloris": (1, "closed", None),
    "abort": (2, "aborted", None),  # audited or not, depending on timing: slack
}
SETUP_KINDS = {
    # the rate-limited secret's one allowed request (burst of 1 per day)
    "rate_first": (200, (200, "allowed")),
    "burst": (200, (200, "allowed")),
    "burst_reuse": (200, (200, "allowed")),
    "warm": (200, (200, "allowed")),
    # burst requests the proxy refuses itself (no upstream dial): they keep the proxy's
    # sockets (client + upstream) under its open-file limit
    "burst_407": (407, (407, "denied")),
    "burst_reuse_407": (407, (407, "denied")),
}

RESULTS = collections.defaultdict(collections.Counter)  # kind -> status -> n
PROBLEMS = collections.Counter()  # description -> n
EXAMPLES = {}  # description -> first example
ERROR_BODIES = collections.Counter()  # (kind, status, body) -> n
SECRET_HITS = collections.Counter()  # where -> n
COUNTS = collections.Counter()  # misc: stale retries, verdicts, ...


def problem(what, example=""):
    PROBLEMS[what] += 1
    EXAMPLES.setdefault(what, example)


def log(msg):
    print(f"\033[1m[soak {time.strftime('%H:%M:%S')}]\033[0m {msg}", file=sys.stderr, flush=True)


def sha(text):
    return hashlib.sha256(text.encode("latin-1") if isinstance(text, str) else text).hexdigest()


# --- secrets -------------------------------------------------------------------------------


class Secret:
    def __init__(self, i, dst, rate_limit=None):
        self.i = i
        self.token = f"sk-soak-{i:04d}-{rnd.token_hex(16)}"
        self.caller = f"caller-{i:04d}-{rnd.token_hex(12)}"
        self.dst = dst  # "authorization" or "x-api-key"
        self.rate_limit = rate_limit
        self.sealed = None

    def document(self):
        if self.dst == "authorization":
            proc = {"token": self.token}
        else:
            proc = {"token": self.token, "dst": "X-Api-Key", "fmt": "%s"}
        digest = base64.b64encode(hashlib.sha256(self.caller.encode()).digest()).decode()
        doc = {
            "inject_processor": proc,
            "bearer_auth": {"digest": digest},
            "allowed_hosts": [HOST],
        }
        if self.i % 2 == 0:
            doc["id"] = f"soak-{self.i}"
        if self.rate_limit:
            doc["rate_limit"] = self.rate_limit
        return json.dumps(doc)

    def expect(self):
        value = f"Bearer {self.token}" if self.dst == "authorization" else self.token
        return f"{self.dst}={sha(value)}"


async def seal_all(binary, seal_key, items):
    sem = asyncio.Semaphore(8)
    env = {"PATH": os.environ.get("PATH", ""), "SEAL_KEY": seal_key}

    async def one(s):
        async with sem:
            p = await asyncio.create_subprocess_exec(
                binary, "seal", "--json-file", "-",
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
            )
            out, err = await p.communicate(s.document().encode())
            if p.returncode != 0:
                raise SystemExit(f"tokenizer seal failed: {err.decode()}")
            s.sealed = out.decode().strip()

    await asyncio.gather(*(one(s) for s in items))


# --- a raw HTTP/1.1 client -------------------------------------------------------------------


class Response:
    def __init__(self, status, headers, body, keep_alive):
        self.status = status
        self.headers = headers  # list of (lower name, value)
        self.body = body
        self.keep_alive = keep_alive

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def text(self):
        head = "".join(f"{k}: {v}\n" for k, v in self.headers)
        return head + self.body.decode("latin-1")


class NoResponse(Exception):
    """The connection ended before any byte of a response."""


async def read_head(reader):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial:
            raise NoResponse() from e
        raise
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = []
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers.append((k.strip().lower(), v.strip()))
    return status, headers


async def read_body(reader, status, headers):
    h = dict(headers)
    keep = h.get("connection", "").lower() != "close"
    if "chunked" in h.get("transfer-encoding", "").lower():
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return b"".join(parts), keep
    if "content-length" in h:
        n = int(h["content-length"])
        return (await reader.readexactly(n) if n else b""), keep
    if status in (204, 304) or 100 <= status < 200:
        return b"", keep
    return await reader.read(), False


class Conn:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.last_used = time.monotonic()
        self.uses = 0

    @classmethod
    async def open(cls, addr):
        r, w = await asyncio.open_connection(addr[0], addr[1], limit=1 << 20)
        return cls(r, w)

    async def roundtrip(self, data):
        self.writer.write(data)
        await self.writer.drain()
        status, headers = await read_head(self.reader)
        body, keep = await read_body(self.reader, status, headers)
        self.uses += 1
        self.last_used = time.monotonic()
        return Response(status, headers, body, keep)

    def stale(self, max_idle):
        return self.reader.at_eof() or time.monotonic() - self.last_used > max_idle

    def close(self):
        try:
            self.writer.transport.abort() if self.writer.transport else None
        except Exception:  # noqa: BLE001
            pass


def request(method, host, path, headers, body=None):
    lines = [f"{method} http://{host}{path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


async def simple_get(addr, path, token=None, timeout=30):
    """GET http://addr/path on a fresh connection (the admin listener)."""
    c = await asyncio.wait_for(Conn.open(addr), timeout)
    try:
        hs = [("Connection", "close")]
        if token:
            hs.append(("Authorization", f"Bearer {token}"))
        lines = [f"GET {path} HTTP/1.1", f"Host: {addr[0]}:{addr[1]}"] + [f"{k}: {v}" for k, v in hs]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode()
        return await asyncio.wait_for(c.roundtrip(data), timeout)
    finally:
        c.close()


# --- the proxy process -------------------------------------------------------------------------


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except FileNotFoundError:
        return None
    return out


def proc_nofile(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    return 1024


def tcp_table():
    """inode -> (local port, remote port, state)"""
    table = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    p = line.split()
                    table[p[9]] = (int(p[1].rsplit(":", 1)[1], 16), int(p[2].rsplit(":", 1)[1], 16), p[3])
        except FileNotFoundError:
            pass
    return table


class Sampler:
    def __init__(self, proc, proxy_port, up_port):
        self.proc, self.proxy_port, self.up_port = proc, proxy_port, up_port
        self.samples = []
        self.phase = "start"
        self.t0 = time.monotonic()
        self.died = None

    def take(self, label=None):
        pid = self.proc.pid
        st = proc_status(pid)
        if self.proc.poll() is not None or st is None or st.get("State", "").startswith("Z"):
            self.died = self.died or f"exit status {self.proc.poll()} during {self.phase}"
            return None
        rss = int(st["VmRSS"].split()[0])
        threads = int(st["Threads"])
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:
            return None
        inodes = []
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.append(link[8:-1])
        table = tcp_table()
        client = upstream = 0
        for ino in inodes:
            e = table.get(ino)
            if not e or e[2] == "0A":  # unknown or LISTEN
                continue
            if e[0] == self.proxy_port:
                client += 1
            elif e[1] == self.up_port:
                upstream += 1
        s = {
            "t": round(time.monotonic() - self.t0, 1),
            "phase": label or self.phase,
            "rss_kib": rss,
            "fds": len(fds),
            "client_conns": client,
            "upstream_conns": upstream,
            "threads": threads,
        }
        self.samples.append(s)
        return s

    async def run(self, every):
        while True:
            self.take()
            await asyncio.sleep(every)


# --- request plans --------------------------------------------------------------------------


class Plan:
    def __init__(self, kind, data, check=None, mode="normal", expect=None):
        self.kind = kind
        self.data = data
        self.check = check  # Response -> problem text or None
        self.mode = mode  # normal, fresh, garbage, slowloris, abort
        self.expect = expect if expect is not None else (KINDS[kind][1] if kind in KINDS else SETUP_KINDS[kind][0])


class Mix:
    def __init__(self, secrets_, rate_secret, scanner, up_slow_ms):
        self.secrets = secrets_
        self.auth = [s for s in secrets_ if s.dst == "authorization"]
        self.xkey = [s for s in secrets_ if s.dst == "x-api-key"]
        self.rate_secret = rate_secret
        self.scanner = scanner
        self.up_slow_ms = up_slow_ms
        names = [k for k in KINDS]
        self.names, self.weights = names, [KINDS[k][0] for k in names]

    def pick(self):
        return self.plan(random.choices(self.names, self.weights)[0])

    @staticmethod
    def base(s, kind):
        return [
            ("Proxy-Tokenizer", s.sealed),
            ("Proxy-Authorization", f"Bearer {s.caller}"),
            ("X-Soak-Kind", kind),
            ("X-Soak-Expect", s.expect()),
        ]

    def verdict_ok(self, r):
        v = r.header("x-soak-verdict")
        if v != "ok":
            COUNTS["client_saw_mismatch"] += 1
            return f"upstream verdict {v!r}"
        return None

    def plan(self, kind, s=None):
        s = s or random.choice(self.secrets)
        if kind in ("valid", "burst", "burst_reuse", "warm"):
            return Plan(kind, request("GET", HOST, f"/check?i={s.i}", self.base(s, kind)), self.verdict_ok)
        if kind == "rate_first":
            s = self.rate_secret
            return Plan(kind, request("GET", HOST, "/check", self.base(s, kind)), self.verdict_ok)
        if kind == "valid_post":
            body = rnd.token_bytes(random.choice([0, 1, 100, 4096, 65536]))
            hs = self.base(s, kind) + [("Content-Type", "application/octet-stream"), ("X-Soak-Body", sha(body))]
            return Plan(kind, request("POST", HOST, "/check", hs, body), self.verdict_ok)
        if kind == "valid2":
            a, b = random.choice(self.auth), random.choice(self.xkey)
            hs = [
                ("Proxy-Tokenizer", a.sealed),
                ("Proxy-Tokenizer", b.sealed),
                ("Proxy-Authorization", f"Bearer {a.caller}"),
                ("Proxy-Authorization", f"Bearer {b.caller}"),
                ("X-Soak-Kind", kind),
                ("X-Soak-Expect", f"{a.expect()},{b.expect()}"),
            ]
            return Plan(kind, request("GET", HOST, "/check", hs), self.verdict_ok)
        if kind == "reflect":
            def check(r):
                if "[REDACTED]" not in r.body.decode("latin-1"):
                    return "reflected credential not masked"
                return self.verdict_ok(r)
            return Plan(kind, request("GET", HOST, "/reflect", self.base(s, kind)), check)
        if kind == "stream":
            def check(r):
                want = "".join(f"chunk {i}\n" for i in range(5))
                if r.body.decode("latin-1") != want:
                    return "stream body incomplete"
                return self.verdict_ok(r)
            return Plan(kind, request("GET", HOST, "/stream?n=5&ms=100", self.base(s, kind)), check)
        if kind == "bad_b64":
            hs = [("Proxy-Tokenizer", "%%% not base64 %%%"), ("Proxy-Authorization", f"Bearer {s.caller}"), ("X-Soak-Kind", kind)]
            return Plan(kind, request("GET", HOST, "/check", hs))
        if kind == "bad_seal":
            junk = base64.b64encode(rnd.token_bytes(random.choice([8, 48, 120]))).decode()
            hs = [("Proxy-Tokenizer", junk), ("Proxy-Authorization", f"Bearer {s.caller}"), ("X-Soak-Kind", kind)]
            return Plan(kind, request("GET", HOST, "/check", hs))
        if kind == "no_secret":
            return Plan(kind, request("GET", HOST, "/check", [("X-Soak-Kind", kind)]))
        if kind in ("wrong_auth", "burst_407", "burst_reuse_407"):
            hs = self.base(s, kind)
            hs[1] = ("Proxy-Authorization", f"Bearer wrong-{rnd.token_hex(8)}")
            return Plan(kind, request("GET", HOST, "/check", hs))
        if kind == "wrong_host":
            return Plan(kind, request("GET", OTHER, "/check", self.base(s, kind)))
        if kind == "rate_limited":
            def check(r):
                return None if r.header("retry-after") else "429 without Retry-After"
            return Plan(kind, request("GET", HOST, "/check", self.base(self.rate_secret, kind)), check)
        if kind == "up_500":
            return Plan(kind, request("GET", HOST, "/fault/500", self.base(s, kind)))
        if kind == "up_reset":
            return Plan(kind, request("GET", HOST, "/fault/reset", self.base(s, kind)))
        if kind == "up_slow":
            return Plan(kind, request("GET", HOST, f"/fault/slow?ms={self.up_slow_ms}", self.base(s, kind)))
        if kind == "garbage":
            junk = random.choice([
                b"THIS IS NOT HTTP\r\n\r\n",
                b"GET http://" + HOST.encode() + b"/ HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nBad Header\r\n\r\n",
                b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n",
            ])
            return Plan(kind, junk, mode="garbage")
        if kind == "slowloris":
            return Plan(kind, b"GET http://" + HOST.encode() + b"/check HTTP/1.1\r\nHost: ", mode="slowloris")
        if kind == "abort":
            return Plan(kind, request("GET", HOST, "/check?delay_ms=300", self.base(s, kind)), mode="abort")
        raise ValueError(kind)


class Client:
    def __init__(self, addr, scanner, pool_max=256, max_idle=10.0, timeout=60.0):
        self.addr = addr
        self.scanner = scanner
        self.pool = []
        self.pool_max = pool_max
        self.max_idle = max_idle
        self.timeout = timeout
        self.inflight = 0

    def take(self):
        while self.pool:
            c = self.pool.pop()
            if c.stale(self.max_idle):
                c.close()
                continue
            return c
        return None

    def give(self, c):
        if len(self.pool) < self.pool_max:
            self.pool.append(c)
        else:
            c.close()

    def close_pool(self):
        for c in self.pool:
            c.close()
        self.pool.clear()

    def record(self, plan, status, resp=None):
        RESULTS[plan.kind][status] += 1
        if status != plan.expect:
            body = resp.body[:200].decode("latin-1") if resp else ""
            problem(f"{plan.kind}: got {status}, want {plan.expect}", body)
        if resp is not None:
            hits = self.scanner(resp.text())
            if hits:
                SECRET_HITS["responses"] += hits
                problem(f"{plan.kind}: a plaintext secret in a response")
            if resp.status >= 400:
                body = re.sub(r"\d+", "N", resp.body.decode("latin-1").strip()[:160])
                ERROR_BODIES[(plan.kind, resp.status, body)] += 1
            if plan.check and status == plan.expect:
                why = plan.check(resp)
                if why:
                    problem(f"{plan.kind}: {why}", resp.body[:200].decode("latin-1"))

    async def run(self, plan):
        self.inflight += 1
        try:
            await asyncio.wait_for(self._run(plan), self.timeout)
        except asyncio.TimeoutError:
            self.record(plan, "timeout")
        except Exception as e:  # noqa: BLE001
            self.record(plan, f"error:{type(e).__name__}")
        finally:
            self.inflight -= 1

    async def _run(self, plan):
        if plan.mode == "garbage":
            c = await Conn.open(self.addr)
            try:
                c.writer.write(plan.data)
                await c.writer.drain()
                try:
                    status, headers = await read_head(c.reader)
                    body, _ = await read_body(c.reader, status, headers)
                    self.record(plan, status, Response(status, headers, body, False))
                except NoResponse:
                    self.record(plan, "closed")
            finally:
                c.close()
            return
        if plan.mode == "slowloris":
            c = await Conn.open(self.addr)
            try:
                c.writer.write(plan.data)
                await c.writer.drain()
                try:
                    status, headers = await read_head(c.reader)
                    self.record(plan, status, Response(status, headers, b"", False))
                except NoResponse:
                    self.record(plan, "closed")
            finally:
                c.close()
            return
        if plan.mode == "abort":
            c = await Conn.open(self.addr)
            c.writer.write(plan.data)
            await c.writer.drain()
            await asyncio.sleep(0.05)
            c.close()
            self.record(plan, "aborted")
            return
        fresh = plan.mode == "fresh" or random.random() < 0.1
        c = None if fresh else self.take()
        reused = c is not None
        if c is None:
            c = await Conn.open(self.addr)
        try:
            resp = await c.roundtrip(plan.data)
        except NoResponse:
            c.close()
            if not reused:
                raise
            # A pooled connection the server had closed: retry once on a new one.
            COUNTS["stale_retries"] += 1
            c = await Conn.open(self.addr)
            reused, fresh = False, True
            resp = await c.roundtrip(plan.data)
        except BaseException:
            c.close()
            raise
        self.record(plan, resp.status, resp)
        if resp.keep_alive and not fresh:
            self.give(c)
        else:
            c.close()


# --- phases ----------------------------------------------------------------------------------


async def burst(client, mix, sampler, n, refused_every, ramp_rate, label="burst"):
    """10,000 concurrent connections, each with a request, in two rounds.

    Round 1 ramps up: connection i is opened at i / ramp_rate seconds and sends a request
    the upstream holds until a common instant, so that at the end of the ramp every
    connection has its request in flight at once (and the proxy has an upstream
    connection per valid one; the ramp paces the upstream TLS handshakes, which a
    single-threaded Python server makes at only a few hundred per second). Round 2, one
    second after, sends a second request on every connection at the same moment:
    keep-alive reuse on both sides, with no handshake left to wait for.

    `refused_every`: one connection in k sends requests the proxy refuses itself (407)
    instead of valid ones (0: none), to keep the proxy's sockets under its open-file
    limit; those come last in the ramp (a connection may not idle for longer than
    CLIENT_HEADER_TIMEOUT before its first request).
    """
    sampler.phase = label
    local = [bool(refused_every) and i % refused_every == 0 for i in range(n)]
    order = [i for i in range(n) if not local[i]] + [i for i in range(n) if local[i]]
    ramp_s = n / ramp_rate
    log(f"{label}: ramping up to {n} connections with a request in flight on each, over {ramp_s:.0f}s")
    conns = [None] * n
    t0 = time.monotonic()
    t_end = t0 + ramp_s + 5
    peak = {"client": 0, "upstream": 0, "inflight_client": 0, "inflight_upstream": 0}

    async def one(i, kind, plan=None):
        """One request on connection i; False when the connection is gone."""
        c = conns[i]
        if c is None:
            return False
        plan = plan or mix.plan(kind)
        try:
            resp = await asyncio.wait_for(c.roundtrip(plan.data), 300)
        except asyncio.TimeoutError:
            client.record(plan, "timeout")
            conns[i] = None
            c.close()
            return False
        except Exception as e:  # noqa: BLE001
            client.record(plan, f"error:{type(e).__name__}")
            conns[i] = None
            c.close()
            return False
        client.record(plan, resp.status, resp)
        if not resp.keep_alive:
            conns[i] = None
            c.close()
            return False
        return True

    async def first(slot, i):
        await asyncio.sleep(max(0.0, t0 + slot / ramp_rate - time.monotonic()))
        last = None
        for _ in range(3):
            try:
                conns[i] = await asyncio.wait_for(Conn.open(client.addr), 30)
                break
            except Exception as e:  # noqa: BLE001
                last = e
                await asyncio.sleep(0.2)
        if conns[i] is None:
            problem(f"burst: connect failed ({type(last).__name__})")
            return
        if local[i]:
            await one(i, "burst_407")
            return
        # Held by the upstream until t_end: every request of the ramp is answered then.
        hold = max(0, int((t_end - time.monotonic()) * 1000))
        s = random.choice(mix.secrets)
        plan = Plan("burst", request("GET", HOST, f"/check?i={s.i}&delay_ms={hold}", mix.base(s, "burst")), mix.verdict_ok)
        await one(i, "burst", plan)

    async def watch(stop):
        while not stop.is_set():
            s = sampler.take()
            if s:
                peak["client"] = max(peak["client"], s["client_conns"])
                peak["upstream"] = max(peak["upstream"], s["upstream_conns"])
            try:
                await asyncio.wait_for(stop.wait(), 1)
            except asyncio.TimeoutError:
                pass

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(stop))

    async def at_peak():
        # Just before the held answers come back: everything is in flight.
        await asyncio.sleep(max(0.0, t_end - 1.5 - time.monotonic()))
        s = sampler.take(f"{label}: all in flight")
        if s:
            peak["inflight_client"], peak["inflight_upstream"] = s["client_conns"], s["upstream_conns"]

    snap = asyncio.create_task(at_peak())
    await asyncio.gather(*(first(slot, i) for slot, i in enumerate(order)))
    await snap
    t_round1 = time.monotonic() - t0
    opened = sum(c is not None for c in conns)
    log(f"{label}: round 1 done in {t_round1:.1f}s; at its peak the proxy held {peak['inflight_client']} client "
        f"and {peak['inflight_upstream']} upstream sockets")

    await asyncio.sleep(1)
    t2 = time.monotonic()
    await asyncio.gather(*(one(i, "burst_reuse_407" if local[i] else "burst_reuse") for i in range(n)))
    t_round2 = time.monotonic() - t2
    still = sum(c is not None for c in conns)
    log(f"{label}: round 2 ({n} requests sent at once on kept-alive connections) answered in {t_round2:.1f}s")
    sampler.take(f"{label}: answered")
    stop.set()
    await watcher
    for c in conns:
        if c is not None:
            c.close()
    # The proxy must let go of every client connection promptly.
    t3 = time.monotonic()
    released = None
    while time.monotonic() - t3 < 30:
        s = sampler.take()
        if s and s["client_conns"] == 0:
            released = time.monotonic() - t3
            break
        await asyncio.sleep(0.2)
    if released is None:
        problem(f"{label}: proxy still holds client connections 30 s after they closed")
    closed = sampler.take(f"{label}: closed")
    return {
        "rss_after": closed["rss_kib"] if closed else None,
        "valid": sum(1 for x in local if not x),
        "local": sum(1 for x in local if x),
        "conns": n,
        "opened": opened,
        "ramp_s": ramp_s,
        "round1_s": t_round1,
        "round2_s": t_round2,
        "kept_alive": still,
        "peak_client": peak["client"],
        "peak_upstream": peak["upstream"],
        "inflight_client": peak["inflight_client"],
        "inflight_upstream": peak["inflight_upstream"],
        "released_s": released,
        "refused_every": refused_every,
    }


async def soak(client, mix, sampler, duration, rate, max_inflight, drain_wait):
    log(f"soak: {duration:.0f}s at {rate} req/s")
    sampler.phase = "soak"
    loop = asyncio.get_running_loop()
    tasks = set()
    t0 = loop.time()
    end = t0 + duration
    warm_at = t0 + min(max(10.0, duration * 0.1), duration * 0.5)
    warm_sample = None
    i = 0
    skipped = 0
    next_report = t0 + 60
    while True:
        t = t0 + i / rate
        if t >= end:
            break
        delay = t - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if warm_sample is None and loop.time() >= warm_at:
            warm_sample = sampler.take("soak: warmed up")
        if loop.time() >= next_report:
            next_report += 60
            s = sampler.samples[-1] if sampler.samples else {}
            log(f"soak: {i} sent, {client.inflight} in flight, RSS {s.get('rss_kib', 0) // 1024} MiB, {s.get('fds')} fds")
        if client.inflight >= max_inflight:
            skipped += 1
        else:
            task = asyncio.create_task(client.run(mix.pick()))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        i += 1
    sent_s = loop.time() - t0
    end_sample = sampler.take("soak: last request sent")
    if tasks:
        await asyncio.wait(tasks, timeout=drain_wait)
    client.close_pool()
    return {"scheduled": i, "skipped": skipped, "seconds": sent_s, "warm": warm_sample, "end": end_sample}


async def wait_released(sampler, baseline_fds, limit):
    """Wait until the proxy holds no client or upstream sockets and its fd count is back to
    the baseline (the upstream pool closes idle connections after 90 s)."""
    sampler.phase = "released"
    t0 = time.monotonic()
    s = None
    while time.monotonic() - t0 < limit:
        s = sampler.take()
        if s and s["client_conns"] == 0 and s["upstream_conns"] == 0 and s["fds"] <= baseline_fds:
            return s, time.monotonic() - t0
        await asyncio.sleep(1)
    return s, None


def parse_metrics(text):
    out = collections.Counter()
    for m in re.finditer(r'^tokenizer_requests_total\{([^}]*)\} (\d+)', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("role") == "serve":
            out[(int(labels["status"]), labels["decision"])] += int(m.group(2))
    return out


def metric(text, name):
    m = re.search(rf"^{name}(?:\{{[^}}]*\}})? (\d+(?:\.\d+)?)", text, re.M)
    return float(m.group(1)) if m else None


async def shutdown(proc, client_addr, admin_addr, mix, shutdown_timeout, n_streams=20):
    """SIGTERM with streams in flight."""
    log(f"shutdown: {n_streams} streams in flight, then SIGTERM")
    out = {"streams": n_streams}
    conns = []
    plans = []
    for _ in range(n_streams):
        s = random.choice(mix.secrets)
        data = request("GET", HOST, "/stream?n=10&ms=200", mix.base(s, "drain"))
        c = await Conn.open(client_addr)
        c.writer.write(data)
        await c.writer.drain()
        conns.append(c)
        plans.append(data)
    heads = await asyncio.gather(*(read_head(c.reader) for c in conns))
    t_sig = time.monotonic()
    proc.send_signal(signal.SIGTERM)

    async def body(c, head):
        status, headers = head
        b, _ = await read_body(c.reader, status, headers)
        return status, b

    bodies = asyncio.gather(*(body(c, h) for c, h in zip(conns, heads)))

    # New connections must be refused promptly; /readyz must say 503 meanwhile.
    # (/readyz is asked once the listener is gone, so that the signal has been handled.)
    refused = None
    readyz = None
    while time.monotonic() - t_sig < 5:
        try:
            c = await asyncio.wait_for(Conn.open(client_addr), 1)
            c.close()
        except ConnectionRefusedError:
            refused = time.monotonic() - t_sig
            try:
                r = await simple_get(admin_addr, "/readyz", timeout=2)
                readyz = r.status
            except Exception as e:  # noqa: BLE001
                readyz = f"error:{type(e).__name__}"
            break
        except Exception:  # noqa: BLE001
            pass
        await asyncio.sleep(0.02)
    results = await asyncio.wait_for(bodies, shutdown_timeout + 10)
    want = "".join(f"chunk {i}\n" for i in range(10))
    complete = sum(1 for st, b in results if st == 200 and b.decode() == want)
    for c in conns:
        c.close()
    t_exit = None
    deadline = time.monotonic() + shutdown_timeout + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            t_exit = time.monotonic() - t_sig
            break
        await asyncio.sleep(0.02)
    out.update(
        complete=complete,
        refused_after=refused,
        readyz=readyz,
        exit_code=proc.poll(),
        exit_after=t_exit,
    )
    return out


# --- main -----------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} not listening on {port} after {timeout}s")


def make_certs(work):
    def run(*args):
        subprocess.run(args, check=True, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run("openssl", "req", "-x509", "-new", "-key", "ca.key", "-days", "2", "-subj", "/CN=soak CA", "-out", "ca.pem",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "leaf.key")
    run("openssl", "req", "-new", "-key", "leaf.key", "-subj", f"/CN={HOST}", "-out", "leaf.csr")
    with open(os.path.join(work, "leaf.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{HOST}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "leaf.ext", "-out", "leaf.pem")
    with open(os.path.join(work, "chain.pem"), "w") as f:
        f.write(open(os.path.join(work, "leaf.pem")).read() + open(os.path.join(work, "ca.pem")).read())


def fmt_mib(kib):
    return f"{kib / 1024:.1f} MiB" if kib is not None else "-"


async def amain(a):
    random.seed(a.seed)
    # Every child inherits this: the client, upstream and proxy each need a socket per
    # connection.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    here = os.path.dirname(os.path.abspath(__file__))
    os.makedirs(a.out_dir, exist_ok=True)
    work = a.work
    make_certs(work)
    up_port, proxy_port, admin_port = free_port(), free_port(), free_port()
    while len({up_port, proxy_port, admin_port}) < 3:
        admin_port = free_port()

    children = []
    up_log = open(os.path.join(a.out_dir, "upstream.log"), "w")
    upstream = subprocess.Popen(
        [sys.executable, os.path.join(here, "upstream.py"), "--port", str(up_port),
         "--cert", os.path.join(work, "chain.pem"), "--key", os.path.join(work, "leaf.key")],
        stdout=up_log, stderr=up_log,
    )
    children.append(upstream)
    try:
        return await run_all(a, work, upstream, up_port, proxy_port, admin_port, children)
    finally:
        for p in children:
            if p.poll() is None:
                p.kill()
                p.wait()


async def run_all(a, work, upstream, up_port, proxy_port, admin_port, children):
    wait_port(up_port, upstream, "upstream")
    open_key = rnd.token_hex(32)
    admin_token = f"admin-{rnd.token_hex(16)}"
    env = {"PATH": os.environ.get("PATH", ""), "OPEN_KEY": open_key}
    seal_key = subprocess.run([a.bin, "sealkey"], env=env, check=True, capture_output=True, text=True).stdout
    seal_key = seal_key.strip().split("=", 1)[1]

    log(f"sealing {a.secrets} secrets with tokenizer seal")
    items = [Secret(i, "authorization" if i % 2 == 0 else "x-api-key") for i in range(a.secrets)]
    rate_secret = Secret(a.secrets, "authorization", rate_limit="1/day")
    await seal_all(a.bin, seal_key, items + [rate_secret])
    everything = items + [rate_secret]

    plaintext = [s.token for s in everything] + [s.caller for s in everything] + [open_key, admin_token]
    sealed = [s.sealed for s in everything]
    plain_re = re.compile("|".join(re.escape(t) for t in plaintext))
    # Also look for each token in base64 (the reflection guard's other spelling), as a
    # substring that does not depend on alignment: the middle of its three encodings.
    b64_needles = []
    for t in [s.token for s in everything]:
        for shift in range(3):
            enc = base64.b64encode(b"\0" * shift + t.encode()).decode()
            b64_needles.append(enc[4:-4])
    b64_re = re.compile("|".join(re.escape(t) for t in b64_needles))

    def scanner(text):
        return len(plain_re.findall(text)) + len(b64_re.findall(text))

    log_path = os.path.join(a.out_dir, "proxy.log")
    proxy_log = open(log_path, "wb")
    penv = dict(env)
    penv.update({
        "LISTEN_ADDRESS": f"127.0.0.1:{proxy_port}",
        "ADMIN_ADDRESS": f"127.0.0.1:{admin_port}",
        "ADMIN_TOKEN": admin_token,
        "UPSTREAM_CA_FILE": os.path.join(work, "ca.pem"),
        "UPSTREAM_RESOLVE": f"{HOST}=127.0.0.1:{up_port}",
        "UPSTREAM_ALLOW_CIDRS": "127.0.0.0/8",
        "UPSTREAM_RESPONSE_TIMEOUT": f"{int(a.upstream_timeout * 1000)}ms",
        "CLIENT_HEADER_TIMEOUT": f"{int(a.header_timeout * 1000)}ms",
        "SHUTDOWN_TIMEOUT": f"{int(a.shutdown_timeout * 1000)}ms",
        "RUST_LOG": a.rust_log,
        "LOG_FORMAT": "json",
    })
    proc = subprocess.Popen([a.bin, "serve"], env=penv, stdout=proxy_log, stderr=proxy_log, stdin=subprocess.DEVNULL)
    children.append(proc)
    wait_port(proxy_port, proc, "tokenizer serve")
    wait_port(admin_port, proc, "tokenizer admin")
    log(f"tokenizer serve pid {proc.pid} on :{proxy_port} (admin :{admin_port}), upstream :{up_port}")

    addr = ("127.0.0.1", proxy_port)
    admin = ("127.0.0.1", admin_port)
    sampler = Sampler(proc, proxy_port, up_port)
    time.sleep(0.5)
    base = sampler.take("start")
    client = Client(addr, scanner, pool_max=a.pool, timeout=2 * a.upstream_timeout + 30)
    mix = Mix(items, rate_secret, scanner, up_slow_ms=int(a.upstream_timeout * 1000) + 5000)
    started = time.monotonic()

    # Warm-up: one request of every kind, and the rate-limited secret's one allowed request.
    await client.run(mix.plan("rate_first"))
    await asyncio.gather(*(client.run(mix.plan(k)) for k in KINDS if k not in ("slowloris", "up_slow")))
    for _ in range(50):
        await client.run(mix.plan("warm"))
    client.close_pool()
    warm0 = sampler.take("warm-up done")

    # Open-file limits: the proxy holds a socket per client connection and one per upstream
    # connection (one per valid request in flight). Where the hard limit is too low for
    # both (it cannot be raised without CAP_SYS_RESOURCE), some burst connections send
    # requests the proxy refuses itself, which need no upstream socket.
    proxy_nofile = proc_nofile(proc.pid)
    room = proxy_nofile - a.conns - 1000
    refused_every = 0
    if room < a.conns:
        if room <= 0:
            raise SystemExit(f"the proxy's open-file limit {proxy_nofile} cannot hold {a.conns} connections")
        # the largest k (fewest refused) such that n - ceil(n/k) <= room
        refused_every = next(k for k in range(a.conns, 0, -1) if a.conns - -(-a.conns // k) <= room)
        log(f"open-file limit {proxy_nofile}: one burst connection in {refused_every} sends requests the proxy refuses itself")
    bg = asyncio.create_task(sampler.run(a.sample))
    bursts = []
    for k in range(a.bursts):
        bursts.append(await burst(client, mix, sampler, a.conns, refused_every, a.ramp_rate, f"burst {k + 1}"))
    soak_out = await soak(client, mix, sampler, a.duration, a.rate, a.max_inflight, client.timeout + 10)
    bg.cancel()

    # Counters, before the shutdown phase adds anything.
    stats = await simple_get(admin, "/v1/stats", admin_token)
    metrics = await simple_get(admin, "/metrics")
    audit = await simple_get(admin, "/v1/audit?limit=1000", admin_token)
    for where, r in (("/v1/stats", stats), ("/metrics", metrics), ("/v1/audit", audit)):
        hits = scanner(r.text())
        if hits:
            SECRET_HITS[where] += hits
        for s in sealed:
            if s in r.text():
                SECRET_HITS[f"{where} (sealed)"] += 1

    log(f"waiting up to {a.fd_wait}s for the proxy to release every connection (upstream pool idle timeout: 90 s)")
    released, released_s = await wait_released(sampler, base["fds"], a.fd_wait)
    final_rss = released["rss_kib"] if released else None

    sd = await shutdown(proc, addr, admin, mix, a.shutdown_timeout)
    total_s = time.monotonic() - started
    up_stats = json.loads((await upstream_stats(up_port, work)).body)

    # The whole log, now that the process has exited.
    proxy_log.close()
    with open(log_path, "rb") as f:
        log_text = f.read().decode("utf-8", "replace")
    log_hits = scanner(log_text)
    if log_hits:
        SECRET_HITS["proxy log"] += log_hits
    for s in sealed:
        if s in log_text:
            SECRET_HITS["proxy log (sealed)"] += 1
    log_lines = log_text.count("\n")
    panics = len(re.findall(r"panick", log_text))

    return report(a, locals())


async def upstream_stats(up_port, work):
    ctx = ssl.create_default_context(cafile=os.path.join(work, "ca.pem"))
    r, w = await asyncio.open_connection("127.0.0.1", up_port, ssl=ctx, server_hostname=HOST)
    w.write(f"GET /__soak/stats HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
    await w.drain()
    status, headers = await read_head(r)
    body, _ = await read_body(r, status, headers)
    w.close()
    return Response(status, headers, body, False)


def report(a, v):
    """Check everything, print the summary, write results.md; returns the exit status."""
    failures = []
    sampler, base = v["sampler"], v["base"]
    samples = [s for s in sampler.samples if s]
    up = v["up_stats"]
    soak_out, sd = v["soak_out"], v["sd"]
    bursts = v["bursts"]

    if sampler.died:
        failures.append(f"the proxy died: {sampler.died}")
    if sd["exit_code"] != 0:
        failures.append(f"exit status after SIGTERM: {sd['exit_code']}")
    if v["panics"]:
        failures.append(f"{v['panics']} panic lines in the log")

    # Injections.
    if up["mismatch"] or up["proxy_header_leaks"] or up["body_mismatch"]:
        failures.append(
            f"wrong injections at the upstream: {up['mismatch']} (by kind {up['mismatch_kinds']}), "
            f"{up['proxy_header_leaks']} Proxy-* leaks, {up['body_mismatch']} damaged bodies"
        )
    if up["unexpected_kind"]:
        failures.append(f"{up['unexpected_kind']} refused requests reached the upstream: {up['received']}")

    # Statuses by kind.
    for what, n in PROBLEMS.items():
        failures.append(f"{n} x {what}" + (f" (e.g. {EXAMPLES[what]!r})" if EXAMPLES.get(what) else ""))

    # What the upstream received vs what was sent, for kinds that must arrive exactly once.
    for kind in ("valid", "valid_post", "valid2", "reflect", "stream", "up_500", "up_reset", "up_slow",
                 "burst", "burst_reuse", "warm", "rate_first"):
        sent = sum(RESULTS[kind].values())
        got = up["received"].get(kind, 0)
        if got != sent:
            failures.append(f"{kind}: the upstream received {got}, the client sent {sent}")

    # /v1/stats and /metrics against what was sent.
    expect_sd = collections.Counter()
    slack = collections.Counter()
    for kind, statuses in RESULTS.items():
        spec = KINDS.get(kind, (None, None, None))[2] if kind in KINDS else SETUP_KINDS[kind][1]
        n = sum(statuses.values())
        if kind == "abort":
            slack[(200, "allowed")] += n
        elif spec:
            expect_sd[spec] += n
    got_sd = parse_metrics(v["metrics"].body.decode())
    for key in set(expect_sd) | set(got_sd):
        lo, hi = expect_sd[key], expect_sd[key] + slack[key]
        if not lo <= got_sd[key] <= hi:
            failures.append(f"/metrics requests_total{{status={key[0]},decision={key[1]}}} = {got_sd[key]}, want {lo}" + (f"..{hi}" if hi != lo else ""))
    totals = json.loads(v["stats"].body)["totals"]
    by_decision = collections.Counter()
    slack_d = collections.Counter()
    for (st, d), n in expect_sd.items():
        by_decision[d] += n
    for (st, d), n in slack.items():
        slack_d[d] += n
    for d in set(by_decision) | {k for k in totals if k != "total"}:
        lo, hi = by_decision[d], by_decision[d] + slack_d[d]
        if not lo <= totals.get(d, 0) <= hi:
            failures.append(f"/v1/stats {d} = {totals.get(d, 0)}, want {lo}" + (f"..{hi}" if hi != lo else ""))
    reflections = metric(v["metrics"].body.decode(), "tokenizer_reflections_redacted_total")
    if reflections is not None and reflections < sum(RESULTS["reflect"].values()):
        failures.append(f"reflections redacted {reflections} < reflect requests {sum(RESULTS['reflect'].values())}")

    # Secrets.
    if SECRET_HITS:
        failures.append(f"plaintext secrets found: {dict(SECRET_HITS)}")

    # RSS and fds.
    warm = soak_out["warm"] or {}
    end = soak_out["end"] or {}
    soak_samples = [s for s in samples if s["phase"].startswith("soak")]
    rss_growth = (end.get("rss_kib", 0) - warm.get("rss_kib", 0))
    rss_limit = max(a.rss_limit_mib * 1024, warm.get("rss_kib", 0) * 0.25)
    if warm and end and rss_growth > rss_limit:
        failures.append(f"RSS grew {rss_growth / 1024:.1f} MiB during the soak (limit {rss_limit / 1024:.1f} MiB)")
    released = v["released"]
    if v["released_s"] is None:
        failures.append(
            f"fds not back to the baseline {base['fds']} after {a.fd_wait}s: {released}"
        )
    for k, b in enumerate(bursts):
        if b["opened"] != a.conns:
            failures.append(f"burst {k + 1}: {b['opened']} of {a.conns} connections opened")
    if len(bursts) > 1 and bursts[0]["rss_after"] and bursts[-1]["rss_after"]:
        first, last = bursts[0]["rss_after"], bursts[-1]["rss_after"]
        if last > first * 1.25 + 16 * 1024:
            failures.append(f"RSS after burst {len(bursts)} ({fmt_mib(last)}) grew past burst 1's ({fmt_mib(first)}): a leak per connection?")
    if sd["complete"] != sd["streams"]:
        failures.append(f"shutdown: {sd['complete']} of {sd['streams']} in-flight streams completed")
    if sd["refused_after"] is None:
        failures.append("shutdown: new connections were still accepted 5 s after SIGTERM")
    if sd["readyz"] != 503:
        failures.append(f"shutdown: /readyz answered {sd['readyz']} while draining")

    # --- the report ---
    peak_rss = max(s["rss_kib"] for s in samples)
    peak_fds = max(s["fds"] for s in samples)
    soak_peak_rss = max((s["rss_kib"] for s in soak_samples), default=None)
    sent_soak = {k: sum(RESULTS[k].values()) for k in KINDS}
    total_requests = sum(sum(c.values()) for c in RESULTS.values())
    status_totals = collections.Counter()
    for kind, c in RESULTS.items():
        for st, n in c.items():
            status_totals[st] += n
    expected_status = collections.Counter()
    for kind, c in RESULTS.items():
        want = KINDS[kind][1] if kind in KINDS else SETUP_KINDS[kind][0]
        expected_status[want] += sum(c.values())

    L = []
    L.append(f"# Soak results ({time.strftime('%Y-%m-%d %H:%M')})\n")
    L.append(f"Command: `{a.command}`  ")
    L.append(f"Machine: {os.cpu_count()} CPUs; `tokenizer serve` release build; upstream: bench/soak/upstream.py (TLS); "
             f"{a.secrets} sealed secrets + 1 rate-limited; RUST_LOG={a.rust_log}; "
             f"UPSTREAM_RESPONSE_TIMEOUT={a.upstream_timeout:g}s, CLIENT_HEADER_TIMEOUT={a.header_timeout:g}s.\n")
    L.append(f"**Result: {'PASS' if not failures else 'FAIL'}**\n")
    L.append("| measure | value |")
    L.append("|---|---|")
    for k, b in enumerate(bursts):
        name = f"burst {k + 1} of {len(bursts)}" if len(bursts) > 1 else "burst"
        mix_text = f"{b['valid']:,} valid" + (f" + {b['local']:,} the proxy refuses itself (407), to stay under its open-file limit" if b["local"] else "")
        rel = "never" if b["released_s"] is None else f"{b['released_s']:.1f} s"
        L.append(
            f"| {name} | {b['opened']:,} of {a.conns:,} connections opened over a {b['ramp_s']:.0f} s ramp, each with a request in flight "
            f"({mix_text}); at the peak the proxy held {b['inflight_client']:,} client + {b['inflight_upstream']:,} upstream sockets; "
            f"all answered together {b['round1_s']:.1f} s after the ramp began. Then {b['opened']:,} more requests sent at the same moment "
            f"on the kept-alive connections, all answered in {b['round2_s']:.1f} s. Client sockets released {rel} after the client closed them; "
            f"RSS then {fmt_mib(b['rss_after'])} |"
        )
    L.append(f"| soak | {soak_out['seconds']:.0f} s at {a.rate:g} req/s: {soak_out['scheduled'] - soak_out['skipped']:,} requests ({soak_out['skipped']} skipped at the in-flight cap), plus {sum(sent_soak.values()) - soak_out['scheduled'] + soak_out['skipped']} of the same kinds in the warm-up |")
    L.append(f"| requests in all | {total_requests:,} (+ {sd['streams']} in the shutdown phase) |")
    L.append(f"| wrong injections | {up['mismatch']} (upstream verified {up['verified']:,}; Proxy-* leaks {up['proxy_header_leaks']}; damaged bodies {up['body_mismatch']}; refused requests that reached it {up['unexpected_kind']}) |")
    L.append(f"| plaintext secrets found | {sum(SECRET_HITS.values())} ({len(v['plaintext'])} values and {len(v['sealed'])} sealed tokens searched in the {v['log_lines']:,}-line log, /v1/audit, /v1/stats, /metrics and every response) |")
    L.append(f"| RSS | start {fmt_mib(base['rss_kib'])}; peak {fmt_mib(peak_rss)} (burst); soak after warm-up {fmt_mib(warm.get('rss_kib'))}, soak peak {fmt_mib(soak_peak_rss)}, soak end {fmt_mib(end.get('rss_kib'))} (growth {rss_growth / 1024:+.1f} MiB); idle at the end {fmt_mib(v['final_rss'])} |")
    if v["released_s"] is not None:
        fd_end = f"back to the baseline {v['released_s']:.0f} s after the soak's last response"
    else:
        fd_end = "NOT back to the baseline"
    end_fds = released["fds"] if released else "-"
    L.append(f"| file descriptors | start {base['fds']}; peak {peak_fds:,}; end {end_fds} ({fd_end}) |")
    crashes = "none" if not sampler.died and not v["panics"] else (sampler.died or f"{v['panics']} panics")
    L.append(f"| crashes | {crashes} |")
    if sd["refused_after"] is not None and sd["exit_after"] is not None:
        L.append(f"| graceful shutdown | SIGTERM with {sd['streams']} 2-s streams in flight: {sd['complete']} completed; new connections refused after {sd['refused_after'] * 1000:.0f} ms; /readyz {sd['readyz']} while draining; exit {sd['exit_code']} after {sd['exit_after']:.2f} s |")
    else:
        L.append(f"| graceful shutdown | {sd} |")
    L.append(f"| duration | {v['total_s']:.0f} s in all |")
    L.append("")
    L.append("Requests by kind (soak mix; setup rows are the warm-up and burst):\n")
    L.append("| kind | sent | expected | got |")
    L.append("|---|---:|---|---|")
    for kind in list(KINDS) + list(SETUP_KINDS):
        c = RESULTS.get(kind)
        if not c:
            continue
        want = KINDS[kind][1] if kind in KINDS else SETUP_KINDS[kind][0]
        got = ", ".join(f"{st}: {n:,}" for st, n in sorted(c.items(), key=lambda x: str(x[0])))
        L.append(f"| {kind} | {sum(c.values()):,} | {want} | {got} |")
    L.append("")
    L.append("Statuses the client saw, against what it sent:\n")
    L.append("| status | expected | seen |")
    L.append("|---|---:|---:|")
    for st in sorted(set(status_totals) | set(expected_status), key=str):
        L.append(f"| {st} | {expected_status[st]:,} | {status_totals[st]:,} |")
    L.append("")
    L.append(f"/v1/stats totals: `{json.dumps(totals)}`\n")
    L.append("Error bodies (each distinct one, with its count):\n")
    L.append("| kind | status | body | n |")
    L.append("|---|---|---|---:|")
    for (kind, st, body), n in sorted(ERROR_BODIES.items(), key=lambda x: (x[0][0], x[0][1])):
        L.append(f"| {kind} | {st} | `{body.replace('|', '/') or '(empty)'}` | {n:,} |")
    L.append("")
    if COUNTS:
        L.append(f"Client notes: {dict(COUNTS)}\n")
    L.append("RSS and fds over time (every sample in target/soak/samples.json):\n")
    L.append("| t (s) | phase | RSS | fds | client sockets | upstream sockets |")
    L.append("|---:|---|---:|---:|---:|---:|")
    step = max(1, len(samples) // 25)
    shown = samples[::step] + ([samples[-1]] if samples[-1] not in samples[::step] else [])
    for s in shown:
        L.append(f"| {s['t']} | {s['phase']} | {fmt_mib(s['rss_kib'])} | {s['fds']:,} | {s['client_conns']:,} | {s['upstream_conns']:,} |")
    L.append("")
    if failures:
        L.append("Failures:\n")
        L += [f"- {f}" for f in failures]
    text = "\n".join(L) + "\n"
    print(text)
    with open(a.out, "w") as f:
        f.write(text)
    with open(os.path.join(a.out_dir, "samples.json"), "w") as f:
        json.dump(samples, f, indent=1)
    log(f"wrote {a.out}")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--work", required=True, help="a scratch directory (certificates)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=float, default=600)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--secrets", type=int, default=200)
    ap.add_argument("--bursts", type=int, default=2,
                    help="how many times to run the burst (a second one shows whether memory grows per spike)")
    ap.add_argument("--ramp-rate", type=float, default=250,
                    help="burst connections opened per second (paces the upstream handshakes)")
    ap.add_argument("--pool", type=int, default=64, help="keep-alive connections the soak client reuses")
    ap.add_argument("--max-inflight", type=int, default=4000)
    ap.add_argument("--sample", type=float, default=5)
    ap.add_argument("--fd-wait", type=float, default=120)
    ap.add_argument("--rss-limit-mib", type=float, default=16)
    ap.add_argument("--upstream-timeout", type=float, default=60,
                    help="UPSTREAM_RESPONSE_TIMEOUT: longer than the burst's ramp")
    ap.add_argument("--header-timeout", type=float, default=30)
    ap.add_argument("--shutdown-timeout", type=float, default=15)
    ap.add_argument("--rust-log", default="info")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--command", default="bench/soak/run")
    a = ap.parse_args()
    sys.exit(asyncio.run(amain(a)))


if __name__ == "__main__":
    main()
