"""Faults under load: while mixed traffic runs, kill -9 the worker, restart Redis, restart PostgreSQL,
make the storage fail its writes, and keep a webhook receiver that never answers. Afterwards no job may
be stuck, failed jobs must be refunded (every balance adds up), and every answer, also during an
outage, must be in the API's envelope.

    .venv/bin/python bench/faults.py --allow-postgres-restart [--seconds 90]

Without --allow-postgres-restart the PostgreSQL step is skipped (it restarts the machine's cluster
with pg_ctlcluster). Redis is the run's own.
"""

import argparse
import os
import shutil
import socket
import subprocess
import threading
import time

import common
import traffic


def hanging_receiver() -> str:
    """A webhook receiver that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []

    def accept():
        while True:
            connection, _ = server.accept()
            held.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/hook"


def restart_postgres(down_seconds: float):
    version = os.listdir("/etc/postgresql")[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast"], check=True)
    time.sleep(down_seconds)
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True)


def break_storage(seconds: float):
    """Writes under generations/ fail (a dangling link stands where the folder was: even root cannot
    write through it), then the folder comes back."""
    from django.conf import settings

    folder = settings.MEDIA_ROOT / "generations"
    folder.mkdir(parents=True, exist_ok=True)
    aside = folder.with_name("generations.aside")
    folder.rename(aside)
    folder.symlink_to(settings.MEDIA_ROOT / "no-such-disk" / "generations")
    time.sleep(seconds)
    folder.unlink()
    aside.rename(folder)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=90)
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--port", type=int, default=8771)
    parser.add_argument("--allow-postgres-restart", action="store_true")
    args = parser.parse_args()

    os.environ.update(
        WORKER_HEARTBEAT_INTERVAL="2",
        WORKER_MAINTENANCE_INTERVAL="10",
        WEBHOOK_RETRY_DELAYS="1,2,4",
        SAFE_HTTP_READ_TIMEOUT="5",
        SAFE_HTTP_TOTAL_TIMEOUT="8",
    )
    cluster = traffic.Cluster(args.port)
    common.setup()
    accounts = traffic.make_accounts(args.accounts, credits_each=300, max_queued=4, per_minute=240)
    cluster.start()
    log = []
    s = args.seconds

    def at(seconds, name, action):
        def run():
            time.sleep(seconds)
            started = time.monotonic()
            try:
                action()
                log.append(f"- t={seconds:.0f} s: {name} ({time.monotonic() - started:.1f} s)")
            except Exception as exc:
                log.append(f"- t={seconds:.0f} s: {name}: FAILED TO INJECT ({exc!r})")

        return threading.Thread(target=run, daemon=True)

    faults = [
        at(s * 0.10, "kill -9 the worker (its supervisor starts another)", cluster.kill_worker),
        at(s * 0.25, "Redis stopped for 3 s and started empty", lambda: cluster.restart_redis(3)),
        at(s * 0.60, "storage writes failing for 8 s", lambda: break_storage(8)),
    ]
    if args.allow_postgres_restart:
        faults.append(at(s * 0.45, "PostgreSQL stopped for 3 s and started", lambda: restart_postgres(3)))
    try:
        common.connect(args.port, accounts[0][1])
        load = traffic.Traffic(f"http://127.0.0.1:{args.port}", accounts, args.threads, s, webhook=hanging_receiver())
        for fault in faults:
            fault.start()
        started = time.monotonic()
        load.run()
        elapsed = time.monotonic() - started
        from django.db import connection

        connection.close()  # this process's connection did not survive the PostgreSQL restart
        left = traffic.drain(timeout=300)
        checks = traffic.verify(load, credits_each=300)
        after = common.post(
            common.connect(args.port, accounts[0][1]),
            "/api/v3/text2img",
            {"key": accounts[1][1], "prompt": "after the faults", "width": 64, "height": 64, "num_inference_steps": 1},
        )
    finally:
        cluster.stop()
        shutil.rmtree(common.ROOT / "var" / "bench-redis", ignore_errors=True)
    text = traffic.report(load, elapsed, checks, f"Faults under load: {s:.0f} s, {args.threads} client threads")
    text += "\n\nFaults injected:\n" + "\n".join(sorted(log, key=lambda line: float(line.split("=")[1].split()[0])))
    text += (
        f"\n- webhooks: every fifth generation request named a receiver that never answers"
        f"\n- worker processes started (the supervisor replaces one that exits): {cluster.worker_starts}"
        f"\n- still queued or running 300 s after the load stopped: {left}"
        f"\n- a request after the faults: {after['status']}"
    )
    traffic.save(text, "faults")


if __name__ == "__main__":
    main()
