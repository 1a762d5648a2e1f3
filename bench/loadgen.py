"""Open-loop HTTP load at a fixed arrival rate (a separate process; used by bench_service.py).

    python bench/loadgen.py URL KEY PATH RATE SECONDS BODIES.json|- [CONNECTIONS]

Request i is scheduled at start + i / RATE; its latency is measured from that scheduled time (not from when
a connection became free), so a stalled server shows as latency instead of as fewer requests (no
coordinated omission). Raw HTTP/1.1 over keep-alive connections (asyncio streams, uvloop when present),
so the generator itself stays cheap. Prints one JSON line: p50/p90/p99/max in ms, status codes, errors.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


def build_requests(u, key: str, path: str, bodies: list) -> list[bytes]:
    out = []
    for b in bodies:
        head = f"{'GET' if b is None else 'POST'} {path} HTTP/1.1\r\nHost: {u.netloc}\r\nAuthorization: Bearer {key}\r\n"
        if b is None:
            out.append((head + "\r\n").encode())
        else:
            data = json.dumps(b).encode()
            out.append((head + f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
                       + data)
    return out


async def _request(conn, raw: bytes) -> int:
    r, w = conn
    w.write(raw)
    head = await r.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    n = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            n = int(line[15:])
    if n:
        await r.readexactly(n)
    return status


async def run(url: str, key: str, path: str, rate: float, seconds: float, bodies: list, conns: int) -> dict:
    u = urlsplit(url)
    reqs = build_requests(u, key, path, bodies)
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(conns):
        pool.put_nowait(await asyncio.open_connection(u.hostname, u.port))
    n = int(rate * seconds)
    lat = [0.0] * n
    codes: dict[str, int] = {}
    start = time.perf_counter() + 0.2

    async def one(i: int) -> None:
        sched = start + i / rate
        d = sched - time.perf_counter()
        if d > 0:
            await asyncio.sleep(d)
        conn = await pool.get()
        try:
            code = str(await _request(conn, reqs[i % len(reqs)]))
            pool.put_nowait(conn)
        except Exception as e:  # noqa: BLE001 - counted as an error by its type
            code = type(e).__name__
            try:
                pool.put_nowait(await asyncio.open_connection(u.hostname, u.port))
            except OSError:
                pass
        lat[i] = time.perf_counter() - sched
        codes[code] = codes.get(code, 0) + 1

    tasks = []
    for i in range(n):  # tasks created a little ahead of their schedule (bounded memory)
        tasks.append(asyncio.ensure_future(one(i)))
        if i % 200 == 199:
            await asyncio.sleep(max(0.0, start + (i - 400) / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - start
    ls = sorted(lat)

    def q(p: float) -> float:
        return round(ls[min(len(ls) - 1, int(p * len(ls)))] * 1000, 2)

    return {"requests": n, "rate": rate, "seconds": seconds, "wall": round(wall, 2), "codes": codes,
            "p50_ms": q(0.5), "p90_ms": q(0.9), "p99_ms": q(0.99), "max_ms": round(ls[-1] * 1000, 2),
            "errors": sum(v for k, v in codes.items() if k != "200")}


def main() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    url, key, path, rate, seconds, body_file = sys.argv[1:7]
    conns = int(sys.argv[7]) if len(sys.argv) > 7 else 64
    bodies = json.load(open(body_file)) if body_file != "-" else [None]
    res = asyncio.run(run(url, key, path, float(rate), float(seconds), bodies, conns))
    sys.stdout.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
