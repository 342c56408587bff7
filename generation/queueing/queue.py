"""The Redis side of jobs: RQ queues (worker tasks named by dotted path, so the web side never imports
the worker's code), each queue's backlog counters, the cancel flag, the finished signal that wakes a
waiting request, and each job's events (queued, running, progress, finished) published for the requests
that wait on it or stream it (generation/web/waiting.py)."""

import json
import logging
from contextlib import suppress

import redis
from rq import Callback, Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob

from generation.infra.redis_client import blocking_connection, connection

logger = logging.getLogger(__name__)

RUN_TASK = "generation.runtime.tasks.run_job"
FAILURE_CALLBACK = "generation.runtime.tasks.on_rq_failure"
FINISHED_KEY = "sdxl:finished:{}"
FINISHED_TTL = 300
CANCEL_KEY = "sdxl:cancel:{}"
CANCEL_TTL = 24 * 3600
BACKLOG_KEY = "sdxl:backlog"
ANSWER_KEY = "sdxl:answer:{}"  # a finished job's fetch answer, with its owner
ANSWER_TTL = 3600
EVENTS = "sdxl:events:"  # + "job:<id>" (a job's events) or "queue:<name>" (a job left that queue)
GIVEN_UP = ("failed", "stopped", "canceled")  # RQ states of a try that will not run again


def queue_name(priority: str, checkpoint: str = "") -> str:
    """The RQ queue of a job: its plan's priority, and for a checkpoint other than the default one, that
    checkpoint's own queue, which only workers holding it serve."""
    return f"{priority}.{checkpoint}" if checkpoint else priority


def split_queue_name(name: str) -> tuple[str, str]:
    """(priority, checkpoint) of a queue name ("" for the default checkpoint)."""
    priority, _, checkpoint = name.partition(".")
    return priority, checkpoint


def queue(name: str) -> Queue:
    return Queue(name, connection=connection())


def known_queue_names() -> list[str]:
    """Every queue RQ has seen a job on (the per-checkpoint ones too), sorted."""
    return sorted(q.name for q in Queue.all(connection=connection()))


def queue_key(name: str) -> str:
    """The Redis list behind an RQ queue."""
    return Queue.redis_queue_namespace_prefix + name


def enqueue(job, timeout: int):
    """Put `job`'s current try on its RQ queue and into the backlog, in one round trip. The RQ job id
    is derived from the job id and try, so it can be found again."""
    with connection().pipeline() as pipe:
        queue(job.queue_name).enqueue_call(
            RUN_TASK,
            args=(job.id, job.attempt),
            job_id=job.rq_job_id,
            timeout=timeout,
            result_ttl=0,
            failure_ttl=24 * 3600,
            on_failure=Callback(FAILURE_CALLBACK),
            pipeline=pipe,
        )
        add_to_backlog(pipe, job.queue_name, job.predicted_seconds)
        publish_job_event(pipe, job.id, {"event": "queued"})
        pipe.execute()


def job_channel(job_id: int) -> str:
    return f"{EVENTS}job:{job_id}"


def queue_channel(name: str) -> str:
    return f"{EVENTS}queue:{name}"


def publish_job_event(pipe, job_id: int, event: dict):
    """Tell whoever waits on or streams the job (on `pipe`: a client or a pipeline)."""
    pipe.publish(job_channel(job_id), json.dumps(event))


def publish_progress(job_id: int, event: dict):
    """A running job's step (and preview, ETA), for its event streams."""
    publish_job_event(connection(), job_id, {"event": "progress", **event})


def waiting_ids(name: str, limit: int) -> list[str]:
    """The RQ job ids at the head of queue `name`, next first."""
    return queue(name).get_job_ids(0, limit)


def take(name: str, rq_job_id: str) -> bool:
    """Take one try off queue `name` for the worker that runs it with another (a batch); True when this
    call removed it, so no other worker can get it."""
    conn = connection()
    if not conn.lrem(queue_key(name), 1, rq_job_id):
        return False
    conn.delete(RQJob.key_for(rq_job_id))
    return True


def position(job) -> int | None:
    """`job`'s index on its RQ queue counted from the tail (jobs ahead of it), None when it is not there."""
    return connection().lpos(queue_key(job.queue_name), job.rq_job_id, rank=-1)


def rq_status(job) -> str | None:
    """RQ's status for `job` ("queued", "started", "failed", ...), or None when Redis has no such job."""
    try:
        return RQJob.fetch(job.rq_job_id, connection=connection()).get_status(refresh=False)
    except NoSuchJobError:
        return None


def rq_statuses(jobs) -> list[str | None]:
    """RQ's status of each job's current try, None where RQ has none (one round trip for all)."""
    with connection().pipeline(transaction=False) as pipe:
        for job in jobs:
            pipe.hget(RQJob.key_for(job.rq_job_id), "status")
        return [status.decode() if status else None for status in pipe.execute()]


def stop(job):
    """Raise the flag a canceled job's worker checks between steps, and take it off its RQ queue."""
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
    """Wake up every request waiting for this job."""
    key = FINISHED_KEY.format(job_id)
    with connection().pipeline() as pipe:
        pipe.lpush(key, 1)
        pipe.expire(key, FINISHED_TTL)
        publish_job_event(pipe, job_id, {"event": "finished"})
        pipe.execute()


def wait_finished(job_id: int, timeout: float) -> bool:
    """Block up to `timeout` seconds for the job to finish; True when it did (False if Redis fails).
    A woken waiter puts the signal back, so every request waiting on the job wakes, one after another."""
    if timeout <= 0:
        return False
    try:
        if blocking_connection().blpop([FINISHED_KEY.format(job_id)], timeout=timeout) is None:
            return False
        signal_finished(job_id)
        return True
    except redis.RedisError:
        logger.warning("Waiting for job %s failed; answering processing", job_id, exc_info=True)
        return False


def cached_answer(job_id: int, user_id: int) -> dict | None:
    """The finished job's fetch answer, when it is cached and `user_id`'s (never raises for Redis)."""
    try:
        cached = connection().get(ANSWER_KEY.format(job_id))
    except redis.RedisError:
        return None
    if cached is None:
        return None
    owner, body = json.loads(cached)
    return body if owner == user_id else None


def cache_answer(job_id: int, user_id: int, body: dict, seconds: float = ANSWER_TTL):
    """Keep a finished job's fetch answer (until `seconds` pass or `forget_answer`)."""
    if seconds >= 1:
        with suppress(redis.RedisError):
            connection().set(ANSWER_KEY.format(job_id), json.dumps([user_id, body]), ex=int(seconds))


def forget_answer(*job_ids: int):
    """The jobs' answers changed (a webhook delivered, files deleted, the job deleted)."""
    try:
        connection().delete(*(ANSWER_KEY.format(job_id) for job_id in job_ids))
    except redis.RedisError:  # it expires within ANSWER_TTL
        logger.warning("Could not forget the cached answers of jobs %s", job_ids)


def add_to_backlog(pipe, queue_name: str, seconds: float, count: int = 1):
    """Count `count` jobs of `seconds` each into (or, negative, out of) a queue's backlog, on `pipe`."""
    pipe.hincrby(BACKLOG_KEY, f"{queue_name}:count", count)
    pipe.hincrbyfloat(BACKLOG_KEY, f"{queue_name}:seconds", seconds * count)


def remove_from_backlog(job, started: bool = False):
    """A queued job left its queue (started, canceled, failed): the jobs behind it moved up."""
    with connection().pipeline(transaction=False) as pipe:
        add_to_backlog(pipe, job.queue_name, job.predicted_seconds, count=-1)
        pipe.publish(queue_channel(job.queue_name), job.id)
        if started:
            publish_job_event(pipe, job.id, {"event": "running"})
        pipe.execute()


def backlog() -> dict[str, tuple[int, float]]:
    """Per queue: (queued jobs, their predicted seconds)."""
    result: dict[str, list] = {}
    for field, value in connection().hgetall(BACKLOG_KEY).items():
        name, _, what = field.decode().rpartition(":")
        entry = result.setdefault(name, [0, 0.0])
        if what == "count":
            entry[0] = max(0, int(value))
        else:
            entry[1] = max(0.0, float(value))
    return {name: (count, seconds if count else 0.0) for name, (count, seconds) in result.items()}


def reset_backlog(queues: dict[str, tuple[int, float]]):
    """Replace every queue's backlog with `queues` (name -> (jobs, seconds))."""
    mapping = {}
    for name, (count, seconds) in queues.items():
        mapping[f"{name}:count"] = count
        mapping[f"{name}:seconds"] = seconds
    with connection().pipeline() as pipe:
        pipe.delete(BACKLOG_KEY)
        if mapping:
            pipe.hset(BACKLOG_KEY, mapping=mapping)
        pipe.execute()
