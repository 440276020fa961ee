#!/usr/bin/env python3
"""Fake api.openai.com, api.anthropic.com and api.github.com for the end-to-end test.

Runs inside the test's "internet" network namespace on port 443, with a certificate from
the test CA (only the tokenizer trusts it). Like the real APIs it refuses a request whose
credential is not the real key (401), so a client only succeeds when the key was
injected. Every request is appended to the log file as one JSON line (host, method, path,
all headers, whether it asked for a stream), written before the response is sent.

    fake_api.py --port 443 --cert chain.pem --key key.pem --keys keys.json --log requests.jsonl

keys.json: {"api.openai.com": "Bearer sk-…", "api.anthropic.com": "sk-ant-…", …}, the
exact value the credential header must hold for each host.
"""

import argparse
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Delay between streamed events: long enough that a proxy buffering the response would
# be caught (the clients measure how far apart the events arrive).
STREAM_DELAY = 0.2

OPENAI_TEXT = "Hello from the fake OpenAI API"
OPENAI_STREAM = ["Hello", " from", " the", " fake", " OpenAI", " stream"]
ANTHROPIC_TEXT = "Hello from the fake Anthropic API"
ANTHROPIC_STREAM = ["Hello", " from", " the", " fake", " Anthropic", " stream"]
GITHUB_USER = {
    "login": "e2e-octocat",
    "id": 4242,
    "node_id": "MDQ6VXNlcjQyNDI=",
    "type": "User",
    "site_admin": False,
    "name": "E2E Octocat",
    "company": None,
    "blog": "",
    "location": None,
    "email": None,
    "bio": None,
    "public_repos": 2,
    "followers": 0,
    "following": 0,
    "created_at": "2020-01-01T00:00:00Z",
    "updated_at": "2020-01-01T00:00:00Z",
    "url": "https://api.github.com/users/e2e-octocat",
    "html_url": "https://github.com/e2e-octocat",
}

# Which header carries the credential, per host.
CREDENTIAL_HEADER = {
    "api.openai.com": "authorization",
    "api.anthropic.com": "x-api-key",
    "api.github.com": "authorization",
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-api/1"

    def setup(self):
        # The TLS handshake happens here, in this connection's thread, not in accept().
        self.request.settimeout(30)
        self.request.do_handshake()
        super().setup()

    def log_message(self, fmt, *args):
        sys.stderr.write("fake-api: " + (fmt % args) + "\n")

    # --- request plumbing -------------------------------------------------------------

    def read_body(self):
        length = self.headers.get("Content-Length")
        if length is not None:
            return self.rfile.read(int(length))
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def record(self, body):
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
        entry = {
            "time": time.time(),
            "host": (self.headers.get("Host") or "").split(":")[0],
            "method": self.command,
            "path": self.path,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "stream": bool(isinstance(doc, dict) and doc.get("stream")),
        }
        with self.server.log_lock:
            with open(self.server.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
                f.flush()
        return doc

    def send_json(self, status, doc, extra=()):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def chunk(self, text):
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # --- dispatch ---------------------------------------------------------------------

    def handle_any(self):
        body = self.read_body()
        doc = self.record(body)
        host = (self.headers.get("Host") or "").split(":")[0]
        header = CREDENTIAL_HEADER.get(host)
        if header is None:
            return self.send_json(421, {"error": "unknown host " + host})
        if self.headers.get(header) != self.server.keys.get(host):
            # What the real APIs answer to a wrong key.
            if host == "api.github.com":
                return self.send_json(401, {"message": "Bad credentials"})
            return self.send_json(
                401, {"error": {"type": "authentication_error", "message": "invalid key"}}
            )
        path = self.path.split("?")[0]
        if host == "api.openai.com" and self.command == "POST" and path == "/v1/chat/completions":
            return self.openai_chat(doc or {})
        if host == "api.anthropic.com" and self.command == "POST" and path == "/v1/messages":
            return self.anthropic_messages(doc or {})
        if host == "api.github.com" and self.command == "GET" and path == "/user":
            return self.send_json(
                200,
                GITHUB_USER,
                [("X-OAuth-Scopes", "repo, read:org"), ("X-GitHub-Media-Type", "github.v3")],
            )
        return self.send_json(404, {"message": "Not Found"})

    do_GET = handle_any
    do_POST = handle_any
    do_PUT = handle_any
    do_PATCH = handle_any
    do_DELETE = handle_any

    # --- OpenAI -----------------------------------------------------------------------

    def openai_chat(self, req):
        model = req.get("model", "gpt-4o-mini")
        created = int(time.time())
        if not req.get("stream"):
            return self.send_json(
                200,
                {
                    "id": "chatcmpl-e2e",
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": OPENAI_TEXT, "refusal": None},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
                    "system_fingerprint": None,
                },
                [("x-request-id", "req_e2e")],
            )

        def event(delta, finish=None):
            doc = {
                "id": "chatcmpl-e2e-stream",
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            }
            return "data: " + json.dumps(doc) + "\n\n"

        self.start_stream()
        self.chunk(event({"role": "assistant", "content": ""}))
        for piece in OPENAI_STREAM:
            time.sleep(STREAM_DELAY)
            self.chunk(event({"content": piece}))
        self.chunk(event({}, "stop"))
        self.chunk("data: [DONE]\n\n")
        self.end_stream()

    # --- Anthropic --------------------------------------------------------------------

    def anthropic_messages(self, req):
        model = req.get("model", "claude-sonnet-4-5")
        if not req.get("stream"):
            return self.send_json(
                200,
                {
                    "id": "msg_e2e",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": ANTHROPIC_TEXT}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": {"input_tokens": 5, "output_tokens": 7},
                },
                [("request-id", "req_e2e")],
            )

        def event(name, doc):
            return "event: " + name + "\ndata: " + json.dumps(doc) + "\n\n"

        self.start_stream()
        self.chunk(
            event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_e2e_stream",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 5, "output_tokens": 1},
                    },
                },
            )
        )
        self.chunk(
            event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        self.chunk(event("ping", {"type": "ping"}))
        for piece in ANTHROPIC_STREAM:
            time.sleep(STREAM_DELAY)
            self.chunk(
                event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                )
            )
        self.chunk(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        self.chunk(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": 7},
                },
            )
        )
        self.chunk(event("message_stop", {"type": "message_stop"}))
        self.end_stream()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--keys", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"])

    server = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    with open(args.keys, encoding="utf-8") as f:
        server.keys = json.load(f)
    server.log_path = args.log
    server.log_lock = threading.Lock()
    print("fake-api listening on port %d" % args.port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
