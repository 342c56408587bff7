"""Fetches of a finished job per second through the web tier as `make run` serves it, and the database
statements each one costs (PostgreSQL's count of committed transactions: every statement outside a
transaction is one).

    .venv/bin/python bench/fetch.py [--seconds 10] [--clients 8] [--web-workers 2]
"""

import argparse
import http.client
import multiprocessing
import time

import common


def client(port, key, job_id, seconds, results):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert common.post(conn, f"/api/v3/fetch/{job_id}", {"key": key})["status"] == "success"
        done += 1
    results.put(done)


def transactions() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    key = common.setup()
    web = common.start_web(args.port, args.web_workers)
    worker = common.start_worker()
    try:
        conn = common.connect(args.port, key)
        job_id = common.post(conn, "/api/v3/text2img", {"key": key, **common.TINY})["id"]
        assert common.post(conn, f"/api/v3/fetch/{job_id}", {"key": key})["status"] == "success"
        common.stop(worker)
        time.sleep(1)
        before = transactions()
        results = multiprocessing.Queue()
        clients = [
            multiprocessing.Process(target=client, args=(args.port, key, job_id, args.seconds, results))
            for _ in range(args.clients)
        ]
        for process in clients:
            process.start()
        fetched = sum(results.get() for _ in clients)
        for process in clients:
            process.join()
        time.sleep(1.5)  # the statistics of the web processes' last statements
        statements = transactions() - before - 2
    finally:
        common.stop(web, worker)
    print(
        f"fetch of a finished job: {fetched / args.seconds:.0f}/s ({args.clients} clients, {args.web_workers} web "
        f"processes); {statements / max(fetched, 1):.2f} database statements per fetch"
    )


if __name__ == "__main__":
    main()
