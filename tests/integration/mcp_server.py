"""A real MCP server (the official `mcp` SDK's FastMCP, 1.x or 2.x) over streamable HTTP, behind TLS.

    mcp_server.py --cert LEAF.pem --key KEY.pem --token REAL --log LOG.jsonl --mode json|sse

Listens on 127.0.0.1 on a port the kernel picks and prints `{"port": N}` on stdout once it
accepts connections. Every HTTP request must carry `Authorization: Bearer REAL`, or it is
answered 401 before the SDK sees it. `--mode json` answers POSTs with `application/json`
(`json_response=True`), `--mode sse` with `text/event-stream` (the SDK's default).

Tools: `search_issues` and `get_issue`, which a test's credential allows, and
`delete_repo`, which it must never reach. Each line of LOG is one JSON object: an HTTP
request as it arrived (`{"http": METHOD, "path", "authorization", "jsonrpc": [methods]}`)
or a tool that ran (`{"tool": NAME, "args", "authorization"}`), so a test can tell what
reached the server and with which credential.
"""

import argparse
import json
import socket
import sys
import threading

import uvicorn
from mcp.server.transport_security import TransportSecuritySettings

try:  # mcp 1.x
    from mcp.server.fastmcp import Context, FastMCP

    V1 = True
except ModuleNotFoundError:  # mcp 2.x renamed FastMCP and moved its HTTP settings
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver import MCPServer as FastMCP

    V1 = False

_lock = threading.Lock()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--mode", choices=["json", "sse"], required=True)
    args = parser.parse_args()

    def record(entry: dict) -> None:
        with _lock, open(args.log, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    http_settings = {
        "json_response": args.mode == "json",
        # The client reaches this server as mcp.test (through the proxy or the sidecar).
        "transport_security": TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=["mcp.test", "mcp.test:*"],
            allowed_origins=["https://mcp.test"],
        ),
    }
    if V1:
        mcp = FastMCP("issues", log_level="WARNING", **http_settings)
    else:
        mcp = FastMCP("issues", log_level="WARNING")

    def authorization(ctx: Context) -> str | None:
        request = ctx.request_context.request
        return request.headers.get("authorization") if request is not None else None

    @mcp.tool()
    def search_issues(query: str, ctx: Context) -> str:
        """Search the issues."""
        record({"tool": "search_issues", "args": {"query": query}, "authorization": authorization(ctx)})
        return f"found 2 issues for {query!r}: #7, #9"

    @mcp.tool()
    def get_issue(number: int, ctx: Context) -> str:
        """One issue by number."""
        record({"tool": "get_issue", "args": {"number": number}, "authorization": authorization(ctx)})
        return f"issue #{number}: the proxy works"

    @mcp.tool()
    def delete_repo(repo: str, ctx: Context) -> str:
        """Delete a repository (must never run through the proxy)."""
        record({"tool": "delete_repo", "args": {"repo": repo}, "authorization": authorization(ctx)})
        return f"deleted {repo}"

    app = mcp.streamable_http_app() if V1 else mcp.streamable_http_app(**http_settings)
    expected = f"Bearer {args.token}".encode()

    async def guarded(scope, receive, send):
        """401 unless the request carries the real token; logs every request."""
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization")
        body = b""
        if scope["method"] == "POST":
            # Read the body to log the JSON-RPC methods, then replay it to the SDK.
            chunks = []
            more = True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
        record(
            {
                "http": scope["method"],
                "path": scope["path"],
                "authorization": auth.decode() if auth is not None else None,
                "jsonrpc": jsonrpc_methods(body),
            }
        )
        if auth != expected:
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b"Bearer"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b'{"error":"unauthorized"}'})
            return
        if scope["method"] == "POST":
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            await app(scope, replay, send)
        else:
            await app(scope, receive, send)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(
        guarded,
        ssl_certfile=args.cert,
        ssl_keyfile=args.key,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    server.run(sockets=[sock])


def jsonrpc_methods(body: bytes) -> list:
    """The `method` (and a tools/call's tool name) of each JSON-RPC message in `body`."""
    if not body:
        return []
    try:
        parsed = json.loads(body)
    except ValueError:
        return ["<not json>"]
    messages = parsed if isinstance(parsed, list) else [parsed]
    out = []
    for m in messages:
        if not isinstance(m, dict):
            out.append("<not an object>")
        elif "method" not in m:
            out.append("<response>")
        elif m["method"] == "tools/call":
            out.append(f"tools/call:{(m.get('params') or {}).get('name')}")
        else:
            out.append(m["method"])
    return out


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
