"""Signals of the job lifecycle, so the state machine never calls what reacts to it."""

from django.dispatch import Signal

# Sent once a job reached its final state and the change is committed, with `job` (its final state),
# before the requests waiting on it are woken: what they read is made here (its answer, kept in Redis).
job_settled = Signal()
# Sent once a job reached its final state and the change is committed, with `job_id` and `has_webhook`,
# after the requests waiting on it were woken.
job_finished = Signal()
