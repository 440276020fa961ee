#!/usr/bin/env python3
"""A stand-in API for trying the tokenizer on one machine, offline: HTTPS on 127.0.0.1,
answering every request with JSON that echoes its method, path and headers, and printing
the credential it received (so you can see the real key arrive while the client only
ever held a sealed one).

    python3 scripts/echo-api.py --port 8443 --cert api-cert.pem --key api-key.pem
"""

import argparse
import http.server
import json
import ssl
import sys


class Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        auth = self.headers.get("Authorization") or self.headers.get("x-api-key") or "(none)"
        print("echo-api: %s %s received credential: %s" % (self.command, self.path, auth), flush=True)
        doc = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        out = (json.dumps(doc, indent=2) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Echo)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("echo-api: listening on https://127.0.0.1:%d" % args.port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
