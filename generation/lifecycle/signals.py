"""Signals of the job lifecycle, so the state machine never calls what reacts to it."""

from django.dispatch import Signal

# Sent once a job reached its final state and the change is committed, with `job_id` and `has_webhook`.
job_finished = Signal()
