#!/usr/bin/env python3
"""A git forge and a query-key API for the git-push end-to-end test (git_push.rs).

Runs inside the test's "internet" network namespace on port 443, with a certificate from
the test CA, and dispatches on the Host header:

- each of --git-host (github.test, evil.test) is a smart-HTTP git server: the real
  `git http-backend` (CGI) with GIT_PROJECT_ROOT=<--repos>/<host>, receive-pack enabled.
  Like a private repository on GitHub it wants HTTP Basic auth on every request, with
  the user and the real token of the config file (401 and `WWW-Authenticate: Basic`
  otherwise); only then does it run the backend, with REMOTE_USER set.
- --maps-host (maps.test) is a geocoding API in the shape of Google's: GET
  /v1/geocode?address=…&key=KEY answers 200 only with the real key (403 otherwise).
  Its answer quotes the request line, key included, as some APIs do in their errors:
  what the client gets back must not carry the key (the tokenizer's reflection guard).

Every request is appended to the log as one JSON line before the answer is sent: the
host, method, path, the names of its query parameters and headers, whether its
credential was right ("auth": "ok" / "missing" / "wrong"), for a receive-pack POST the
refs its commands update, whether the body came chunked, the peer address and the
status sent. Credentials themselves are never logged.

    git_server.py --port 443 --cert chain.pem --key key.pem --config conf.json \
        --repos DIR --log requests.jsonl

conf.json: {"user": "x-access-token", "password": "<real token>", "maps_key": "<real
key>", "git_hosts": ["github.test", "evil.test"], "maps_host": "maps.test"}.
"""

import argparse
import base64
import hmac
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit


def pkt_lines(data):
    """The pkt-lines of `data` up to the first flush (0000): the ref-update commands of
    a receive-pack request."""
    out = []
    pos = 0
    while pos + 4 <= len(data):
        try:
            size = int(data[pos : pos + 4], 16)
        except ValueError:
            break
        if size == 0:
            break
        if size < 4:
            break
        out.append(data[pos + 4 : pos + size])
        pos += size
    return out


def updated_refs(body):
    """The refs a receive-pack request's commands update (create, update, delete)."""
    refs = []
    for line in pkt_lines(body):
        line = line.split(b"\0", 1)[0].rstrip(b"\n")
        parts = line.split(b" ")
        if len(parts) == 3 and len(parts[0]) in (40, 64):
            refs.append(parts[2].decode("utf-8", "replace"))
    return refs


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "e2e-forge/1"

    def setup(self):
        # The TLS handshake happens here, in this connection's thread, not in accept().
        self.request.settimeout(60)
        self.request.do_handshake()
        super().setup()

    def log_message(self, fmt, *args):
        sys.stderr.write("git-server: " + (fmt % args) + "\n")

    def log_request(self, code="-", size="-"):
        # Without the query string: it may hold the maps key.
        path = (getattr(self, "path", "") or "").split("?", 1)[0]
        headers = getattr(self, "headers", None)
        host = headers.get("Host") if headers is not None else None
        self.log_message("%s %s %s %s", getattr(self, "command", None), path, code, host)

    def read_body(self):
        """The whole request body, and whether it came chunked."""
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length)), False
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts), True
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return b"", False

    def record(self, entry):
        entry.update(
            {
                "time": time.time(),
                "method": self.command,
                "from": self.client_address[0],
                "headers": sorted({k.lower() for k in self.headers.keys()}),
            }
        )
        with self.server.log_lock:
            with open(self.server.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
                f.flush()

    def send(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def handle_any(self):
        body, chunked = self.read_body()
        host = (self.headers.get("Host") or "").split(":")[0]
        url = urlsplit(self.path)
        query = parse_qsl(url.query, keep_blank_values=True)
        entry = {
            "host": host,
            "path": url.path,
            "query_names": [k for k, _ in query],
            "chunked": chunked,
            "body_len": len(body),
        }
        conf = self.server.conf
        if host in conf["git_hosts"]:
            return self.git(entry, body, url)
        if host == conf["maps_host"]:
            return self.maps(entry, query)
        entry["status"] = 421
        self.record(entry)
        self.send(421, [("Content-Type", "text/plain")], b"unknown host\n")

    do_GET = handle_any
    do_POST = handle_any

    # --- git ------------------------------------------------------------------------

    def git_auth(self):
        conf = self.server.conf
        header = self.headers.get("Authorization")
        if header is None:
            return "missing"
        want = "Basic " + base64.b64encode(
            (conf["user"] + ":" + conf["password"]).encode()
        ).decode()
        return "ok" if hmac.compare_digest(header.encode(), want.encode()) else "wrong"

    def git(self, entry, body, url):
        entry["auth"] = self.git_auth()
        entry["service"] = dict(parse_qsl(url.query)).get("service") or url.path.rsplit("/", 1)[-1]
        if self.command == "POST" and url.path.endswith("/git-receive-pack"):
            raw = body
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                raw = zlib.decompress(body, 16 + zlib.MAX_WBITS)
            entry["refs"] = updated_refs(raw)
        if entry["auth"] != "ok":
            entry["status"] = 401
            self.record(entry)
            return self.send(
                401,
                [("WWW-Authenticate", 'Basic realm="e2e forge"'), ("Content-Type", "text/plain")],
                b"Authentication required\n",
            )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.server.repos,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_PROJECT_ROOT": os.path.join(self.server.repos, entry["host"]),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": unquote(url.path),
            "QUERY_STRING": url.query,
            "REQUEST_METHOD": self.command,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": self.server.conf["user"],
            "REMOTE_ADDR": self.client_address[0],
            "SERVER_PROTOCOL": "HTTP/1.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
        }
        for name in ("Content-Encoding", "Git-Protocol"):
            value = self.headers.get(name)
            if value is not None:
                env["HTTP_" + name.upper().replace("-", "_")] = value
        done = subprocess.run(
            ["git", "http-backend"], input=body, capture_output=True, env=env, timeout=60
        )
        out = done.stdout
        sep = out.find(b"\r\n\r\n")
        if sep >= 0:
            head, payload = out[:sep], out[sep + 4 :]
        else:
            sep = out.find(b"\n\n")
            head, payload = (out[:sep], out[sep + 2 :]) if sep >= 0 else (b"", out)
        status, headers = 200, []
        for line in head.splitlines():
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip(), value.strip()
            if not name:
                continue
            if name.lower() == "status":
                status = int(value.split()[0])
            else:
                headers.append((name, value))
        if done.returncode != 0 and not head:
            status = 500
            payload = b"http-backend failed\n"
            sys.stderr.write("git-server: http-backend: " + done.stderr.decode("replace"))
        entry["status"] = status
        self.record(entry)
        self.send(status, headers, payload)

    # --- maps -----------------------------------------------------------------------

    def maps(self, entry, query):
        keys = [v for k, v in query if k == "key"]
        if not keys:
            entry["auth"] = "missing"
        elif len(keys) == 1 and hmac.compare_digest(
            keys[0].encode(), self.server.conf["maps_key"].encode()
        ):
            entry["auth"] = "ok"
        else:
            entry["auth"] = "wrong"
        address = dict(query).get("address", "")
        if entry["auth"] == "ok" and entry["path"] == "/v1/geocode":
            status = 200
            doc = {
                "status": "OK",
                "results": [{"formatted_address": address + ", E2E Land"}],
                # The request as received, key included: the reflection guard's job.
                "request": self.path,
            }
        else:
            status = 403
            doc = {"status": "REQUEST_DENIED", "error_message": "The provided API key is invalid."}
        entry["status"] = status
        self.record(entry)
        self.send(status, [("Content-Type", "application/json")], json.dumps(doc).encode())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--repos", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])

    server = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    with open(args.config, encoding="utf-8") as f:
        server.conf = json.load(f)
    server.repos = args.repos
    server.log_path = args.log
    server.log_lock = threading.Lock()
    print("git-server listening on port %d" % args.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
