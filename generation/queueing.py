"""Redis side of jobs: putting them on RQ queues and telling waiting requests that a job finished."""

import logging

import redis
from django.conf import settings
from rq import Callback, Queue

logger = logging.getLogger(__name__)

FINISHED_KEY = "sdxl:finished:{}"
FINISHED_TTL = 300
CANCEL_KEY = "sdxl:cancel:{}"
CANCEL_TTL = 24 * 3600


_clients: dict[str, redis.Redis] = {}


def connection() -> redis.Redis:
    """This process's Redis client: one connection pool per URL, shared by its threads (a new client per
    call would open a TCP connection each time)."""
    url = settings.RQ_QUEUES["default"]["URL"]
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = redis.Redis.from_url(url)
    return client


def queue(name: str) -> Queue:
    return Queue(name, connection=connection())


def queue_key(name: str) -> str:
    """The Redis list behind an RQ queue."""
    return Queue.redis_queue_namespace_prefix + name


def enqueue(job, timeout: int):
    """Put `job` on its RQ queue and into the backlog, in one round trip. The RQ job id is derived from
    the job id and try, so it can be found again."""
    from generation import estimates
    from generation.tasks import on_rq_failure, run_job

    with connection().pipeline() as pipe:
        queue(job.queue_name).enqueue_call(
            run_job,
            args=(job.id, job.attempt),
            job_id=job.rq_job_id,
            timeout=timeout,
            result_ttl=0,
            failure_ttl=24 * 3600,
            on_failure=Callback(on_rq_failure),
            pipeline=pipe,
        )
        estimates.add_to_backlog(pipe, job.queue_name, job.predicted_seconds)
        pipe.execute()


def rq_status(job) -> str | None:
    """RQ's status for `job` ("queued", "started", "failed", ...), or None when Redis has no such job."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob

    try:
        return RQJob.fetch(job.rq_job_id, connection=connection()).get_status(refresh=False)
    except NoSuchJobError:
        return None


def rq_statuses(jobs) -> list[str | None]:
    """RQ's status of each job's current try, None where RQ has none (one round trip for all)."""
    from rq.job import Job as RQJob

    with connection().pipeline(transaction=False) as pipe:
        for job in jobs:
            pipe.hget(RQJob.key_for(job.rq_job_id), "status")
        return [status.decode() if status else None for status in pipe.execute()]


def stop(job):
    """Raise the flag a canceled job's worker checks between steps, and take it off its RQ queue."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job as RQJob

    connection().set(CANCEL_KEY.format(job.id), 1, ex=CANCEL_TTL)
    try:
        rq_job = RQJob.fetch(job.rq_job_id, connection=connection())
    except NoSuchJobError:
        return
    if rq_job.get_status(refresh=False) == "queued":
        rq_job.delete()


def cancel_requested(job_id: int) -> bool:
    return connection().exists(CANCEL_KEY.format(job_id)) == 1


def signal_finished(job_id: int):
    """Wake up the request (if any) waiting for this job."""
    key = FINISHED_KEY.format(job_id)
    with connection().pipeline() as pipe:
        pipe.lpush(key, 1)
        pipe.expire(key, FINISHED_TTL)
        pipe.execute()


_waiting_connection = None


def _waiting():
    """A client without a read timeout: BLPOP itself bounds the wait (the default client gives up after 5 s)."""
    global _waiting_connection
    if _waiting_connection is None:
        _waiting_connection = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=None, socket_connect_timeout=5)
    return _waiting_connection


def wait_finished(job_id: int, timeout: float) -> bool:
    """Block up to `timeout` seconds for the job to finish; True when it did (False if Redis fails)."""
    if timeout <= 0:
        return False
    try:
        return _waiting().blpop([FINISHED_KEY.format(job_id)], timeout=timeout) is not None
    except redis.RedisError:
        logger.warning("Waiting for job %s failed; answering processing", job_id, exc_info=True)
        return False
