#!/usr/bin/env python3
"""A TLS upstream for the server-sent-events test: each response sends its first event at
once, then a second one DELAY_MS later, and ends. HTTP/1.1 keep-alive, so a proxy's pooled
connection is reused and no handshake is timed.

usage: sse_upstream.py PORT CERT KEY API_KEY [DELAY_MS]"""
import asyncio
import ssl
import sys

PORT, CERT, KEY, API_KEY = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
DELAY = (int(sys.argv[5]) if len(sys.argv) > 5 else 50) / 1000


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if length:
                await reader.readexactly(length)
            if headers.get("authorization") != "Bearer " + API_KEY:
                writer.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
                continue
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
                + chunk(b"data: first\n\n")
            )
            await writer.drain()
            await asyncio.sleep(DELAY)
            writer.write(chunk(b"data: second\n\n") + b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(CERT, KEY)
    server = await asyncio.start_server(serve, "127.0.0.1", PORT, ssl=ctx)
    async with server:
        await server.serve_forever()


asyncio.run(main())
