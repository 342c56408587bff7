"""A thousand requests that wait, and a thousand event streams, on the web tier as `make run` serves it
(gunicorn, WEB_CONCURRENCY uvicorn processes), while no worker runs: threads per web process, database
connections, pool timeouts and errors, and how long an unrelated `/api/v3/account` takes meanwhile. Then
the jobs are canceled and every request and stream must end with its answer.

    .venv/bin/python bench/waiting.py [--requests 1000] [--streams 1000] [--web-workers 2]
"""

import argparse
import asyncio
import http.client
import json
import os
import resource
import time

import common


def threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads"))


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def backends() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


async def request(port: int, method: str, path: str, body: dict | None, key: str, opened: asyncio.Event | None):
    """One raw HTTP/1.1 request; its status and the rest of what the server sent (a JSON body, or a stream)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = json.dumps(body).encode() if body is not None else b""
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nKey: {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if opened is not None:
        opened.set()
    rest = await reader.read()
    writer.close()
    return int(head.split()[1]), rest


def account_latencies(port: int, key: str, count: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    seconds = []
    for _ in range(count):
        started = time.perf_counter()
        assert common.post(conn, "/api/v3/account", {"key": key})["status"] == "success"
        seconds.append(time.perf_counter() - started)
    return seconds


def cancel_everything(port: int, key: str):
    from generation.models import Job

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for job_id in Job.objects.filter(status="queued").values_list("id", flat=True):
        assert common.post(conn, f"/api/v3/cancel/{job_id}", {"key": key})["canceled"] is True


async def hold(args, key, web, label, tasks, opened):
    """Measure while the requests wait (once each is open), cancel their jobs, check every answer."""
    deadline = time.monotonic() + 300
    while sum(event.is_set() for event in opened) < len(opened) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)  # settled
    pids = common.children(web.pid)
    most_threads = max(threads(pid) for pid in pids)
    connections = await asyncio.to_thread(backends)
    latencies = await asyncio.to_thread(account_latencies, args.port, key, 50)
    rss = sum(rss_mib(pid) for pid in pids)
    await asyncio.to_thread(cancel_everything, args.port, key)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [r for r in results if isinstance(r, Exception) or r[0] != 200 or b"unavailable" in r[1]]
    ended = [r for r in results if not isinstance(r, Exception) and b'"canceled": true' in r[1]]
    print(
        f"{label}: {len(results)} open at once; threads per web process (most) {most_threads}; "
        f"database connections {connections}; web RSS {rss:.0f} MiB; /api/v3/account p50 "
        f"{common.percentile(latencies, 50) * 1000:.0f} ms p95 {common.percentile(latencies, 95) * 1000:.0f} ms; "
        f"errors {len(errors)}; ended by the cancel with its answer {len(ended)}"
    )


async def main_async(args, key, web):
    from generation.models import Job

    queued = lambda: Job.objects.filter(status="queued").count()  # noqa: E731
    tasks = [
        asyncio.ensure_future(request(args.port, "POST", "/api/v3/text2img", {**common.TINY, "seed": i}, key, None))
        for i in range(args.requests)
    ]
    while await asyncio.to_thread(queued) < args.requests:  # a waiting request sends nothing: count its job
        await asyncio.sleep(0.2)
    await hold(args, key, web, f"{args.requests} waiting text2img requests", tasks, [])

    def instant_jobs():
        conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=60)
        body = {"key": key, **common.TINY, "instant_response": "yes"}
        return [common.post(conn, "/api/v3/text2img", body)["id"] for _ in range(args.streams)]

    ids = await asyncio.to_thread(instant_jobs)
    opened = [asyncio.Event() for _ in ids]
    tasks = [
        asyncio.ensure_future(request(args.port, "GET", f"/api/v3/jobs/{job_id}/events", None, key, event))
        for job_id, event in zip(ids, opened)
    ]
    await hold(args, key, web, f"{args.streams} event streams", tasks, opened)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8769)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the web processes inherit it
    os.environ["GENERATION_WAIT_SECONDS"] = "600"  # they wait until the bench cancels their jobs
    key = common.setup()
    web = common.start_web(args.port, args.web_workers)
    try:
        common.connect(args.port, key)
        asyncio.run(main_async(args, key, web))
    finally:
        common.stop(web)
        common.drain()
    print(f"(file descriptors: soft limit raised from {soft} to {hard})")


if __name__ == "__main__":
    main()
