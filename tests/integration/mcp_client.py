"""The official `mcp` SDK's client (1.x or 2.x) over streamable HTTP, as an agent would use it.

    mcp_client.py --url URL [--proxy http://ADDR] [--header NAME:VALUE]...
                  [--ca CA.pem] [--map HOST:PORT=IP:PORT]...

Opens a session on URL with `streamable_http_client` and `ClientSession` over an httpx
client that sends `--header`s on every request, goes through `--proxy` when given (for
`http://` URLs, in absolute form, as an HTTP proxy sees them), trusts `--ca` for `https://`
URLs, and dials IP:PORT whenever it would dial HOST:PORT (a hosts-file entry with a port:
the name still goes in SNI, certificate checks and Host).

Then: initialize; list the tools; call `search_issues`; call `delete_repo`; call
`get_issue` on the same session. Prints one JSON object: what each step returned or
raised. Never fails itself (exit 0) unless its arguments are wrong; the test judges.
"""

import argparse
import json
import sys
import traceback
from datetime import timedelta

from importlib.metadata import version

import anyio
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

V1 = version("mcp").startswith("1.")
if V1:
    import httpx

    STEP_TIMEOUT = timedelta(seconds=15)
else:  # mcp 2.x speaks httpx2 and takes plain seconds
    import httpx2 as httpx

    STEP_TIMEOUT = 15.0


class MappedBackend:
    """An httpcore network backend that dials mapped addresses instead of resolving names."""

    def __init__(self, inner, mapping: dict):
        self._inner = inner
        self._mapping = mapping

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        host, port = self._mapping.get((host, port), (host, port))
        return await self._inner.connect_tcp(
            host, port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        return await self._inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds):
        await self._inner.sleep(seconds)


def http_client(args) -> httpx.AsyncClient:
    headers = {}
    for h in args.header:
        name, value = h.split(":", 1)
        headers[name.strip()] = value.strip()
    verify = args.ca if args.ca else True
    transport = httpx.AsyncHTTPTransport(verify=verify, proxy=args.proxy)
    if args.map:
        mapping = {}
        for m in args.map:
            src, dst = m.split("=", 1)
            sh, sp = src.rsplit(":", 1)
            dh, dp = dst.rsplit(":", 1)
            mapping[(sh, int(sp))] = (dh, int(dp))
        pool = transport._pool  # httpx gives no public hook for the dialler
        pool._network_backend = MappedBackend(pool._network_backend, mapping)
    return httpx.AsyncClient(
        headers=headers,
        transport=transport,
        trust_env=False,
        timeout=httpx.Timeout(30.0, read=60.0),
    )


def describe(exc: BaseException) -> dict:
    """An exception as JSON: its type and message, and those of a group's members."""
    out = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, BaseExceptionGroup):
        out["exceptions"] = [describe(e) for e in exc.exceptions]
    return out


def result_json(result) -> dict:
    return {
        "is_error": bool(result.isError if V1 else result.is_error),
        "text": [c.text for c in result.content if getattr(c, "type", None) == "text"],
    }


async def scenario(args, summary: dict) -> None:
    async with http_client(args) as client:
        async with streamable_http_client(args.url, http_client=client) as streams:
            read, write = streams[0], streams[1]  # 1.x adds a session-id getter
            async with ClientSession(read, write, read_timeout_seconds=STEP_TIMEOUT) as session:
                init = await session.initialize()
                summary["initialized"] = {
                    "sdk": version("mcp"),
                    "server": (init.serverInfo if V1 else init.server_info).name,
                    "protocol": init.protocolVersion if V1 else init.protocol_version,
                }

                tools = await session.list_tools()
                summary["tools"] = sorted(t.name for t in tools.tools)

                summary["search_issues"] = result_json(
                    await session.call_tool("search_issues", {"query": "proxy"})
                )

                try:
                    result = await session.call_tool("delete_repo", {"repo": "acme/prod"})
                    summary["delete_repo"] = {"raised": None, **result_json(result)}
                except Exception as exc:  # what the SDK surfaces to the agent
                    error = getattr(exc, "error", None)
                    summary["delete_repo"] = {
                        "raised": describe(exc),
                        "code": getattr(error, "code", None),
                        "error_message": getattr(error, "message", None),
                    }

                summary["get_issue"] = result_json(await session.call_tool("get_issue", {"number": 7}))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--proxy")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--ca")
    parser.add_argument("--map", action="append", default=[])
    args = parser.parse_args()

    summary: dict = {"fatal": None}
    try:
        with anyio.fail_after(60):
            await scenario(args, summary)
    except BaseException as exc:  # noqa: BLE001 - reported, the test judges
        summary["fatal"] = describe(exc)
        print(traceback.format_exc(), file=sys.stderr)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    anyio.run(main)
