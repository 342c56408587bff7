"""PostgreSQL going away under a batch: rounds of four compatible text2img jobs on one worker
(WORKER_MAX_BATCH=4) whose database connection runs through a proxy; in each round the database is taken
from the worker for a few seconds at a random moment of the batch (denoising, storing, recording), as a
restart does (open connections dropped, new ones refused). Counts how every job ended and how many were
still `running` long after the database was back.

    .venv/bin/python bench/database_outage.py [--rounds 8] [--down 3] [--settle 45]
"""

import argparse
import os
import random
import signal
import time

import common

from tests.tcp_proxy import TcpProxy


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--down", type=float, default=3.0, help="seconds the database is away each round")
    parser.add_argument("--settle", type=float, default=45.0, help="seconds a job may take to end after that")
    args = parser.parse_args()
    os.environ.update(WORKER_HEARTBEAT_INTERVAL="1", WORKER_MAINTENANCE_INTERVAL="5")
    common.setup()
    from django.conf import settings
    from django.db import connection

    from accounts.models import User
    from generation.kinds.text2img import Text2ImgParams
    from generation.lifecycle import jobs
    from generation.models import Job

    database = settings.DATABASES["default"]
    proxy = TcpProxy(database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432))
    through = os.environ["DATABASE_URL"].replace(f"{database['HOST']}:{database['PORT']}", f"127.0.0.1:{proxy.port}")
    worker = common.start_worker("default", DATABASE_URL=through, WORKER_MAX_BATCH="4")
    user = User.objects.get(email="bench@example.com")
    rng = random.Random(7)
    ended, stuck, recovered_in = {}, 0, []
    try:
        for round_ in range(args.rounds):
            os.kill(worker.pid, signal.SIGSTOP)  # all four wait on the queue, so that they run as one batch
            batch = [
                jobs.submit(
                    user=user,
                    params=Text2ImgParams(prompt=f"round {round_} job {i}", width=64, height=64, steps=30, seed=i),
                    base_url="http://bench",
                    queue_name="default",
                )
                for i in range(4)
            ]
            os.kill(worker.pid, signal.SIGCONT)
            ids = [job.id for job in batch]
            while Job.objects.filter(pk__in=ids, status=Job.Status.QUEUED).exists():
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 1.5))  # somewhere in the batch: denoising, storing or recording
            proxy.cut()
            time.sleep(args.down)
            proxy.restore()
            back = time.monotonic()
            while Job.objects.filter(pk__in=ids, status__in=["queued", "running"]).exists():
                if time.monotonic() - back > args.settle:
                    break
                time.sleep(0.1)
            else:
                recovered_in.append(time.monotonic() - back)
            for status in Job.objects.filter(pk__in=ids).values_list("status", flat=True):
                ended[status] = ended.get(status, 0) + 1
            stuck += Job.objects.filter(pk__in=ids, status="running").count()
            connection.close()
    finally:
        common.stop(worker)
    print(f"Database away {args.down:.0f} s under a batch of 4, {args.rounds} rounds ({4 * args.rounds} jobs):")
    print(f"- how the jobs stood {args.settle:.0f} s after the database was back: {dict(sorted(ended.items()))}")
    print(f"- still running then: {stuck}")
    if recovered_in:
        print(f"- rounds whose jobs all ended: {len(recovered_in)}; the slowest ended {max(recovered_in):.1f} s after")


if __name__ == "__main__":
    main()
