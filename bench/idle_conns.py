#!/usr/bin/env python3
"""Open N keep-alive connections to a proxy, send one proxied request on each (at most
CONCURRENCY at a time, so the proxy's upstream pool stays small), then keep them all open
and idle. Prints "ready OPEN FAILED" once they are all open; sleeps until killed.

usage: idle_conns.py PORT N CONCURRENCY TARGET HEADERS_FILE"""
import asyncio
import sys

port, total, concurrency = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
target, headers_file = sys.argv[4], sys.argv[5]
extra = [l.strip() for l in open(headers_file) if l.strip()]
request = "\r\n".join([f"GET {target} HTTP/1.1", "Host: api.test", *extra, "", ""]).encode()


async def one(gate, held):
    async with gate:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                return False
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            held.append(writer)
            return True
        except (OSError, asyncio.IncompleteReadError):
            return False


async def main():
    gate = asyncio.Semaphore(concurrency)
    held = []
    results = await asyncio.gather(*(one(gate, held) for _ in range(total)))
    ok = sum(results)
    print(f"ready {ok} {total - ok}", flush=True)
    await asyncio.sleep(300)


asyncio.run(main())
