"""Why a request is refused, decided once for every API: `classify` turns what a view, a serializer or a
service raised into a Refusal, and each API says it in its own shape (the hosted API's envelope,
generation/api/errors.py; OpenAI's error object and A1111's `detail`, generation/frontends/)."""

import logging
from dataclasses import dataclass, field

import redis
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from rest_framework import exceptions

from billing.credits import InsufficientCredits, QueueFull
from generation.inputs.storage import UploadQuotaFull
from generation.kinds.base import InvalidInput
from generation.lifecycle.jobs import IdempotencyConflict
from generation.services import JobNotFound
from generation.web.parsers import BodyTooLarge

logger = logging.getLogger(__name__)

# the reasons, in the words each API renders
INVALID = "invalid"  # a field's value: `errors` says which and why
UNREADABLE = "unreadable"  # not a body this API reads (not JSON, nested too deep, ...)
TOO_LARGE = "too_large"
BAD_KEY = "bad_key"
THROTTLED = "throttled"  # `retry_after` seconds
QUEUE_FULL = "queue_full"  # `limit` jobs in flight at most
NO_CREDITS = "no_credits"  # `needed` credits against a `balance`
UPLOAD_QUOTA = "upload_quota"  # `used` of `quota` bytes
NOT_FOUND = "not_found"  # no job of this account has that id
CONFLICT = "conflict"  # an idempotency key used for another request
METHOD = "method"  # `method` is not allowed
UNAVAILABLE = "unavailable"  # the database or Redis is away for a moment
REFUSED = "refused"  # another refusal of the web framework's: `message` says it
UNEXPECTED = "unexpected"  # anything else: logged


@dataclass(frozen=True)
class Refusal:
    reason: str
    errors: dict = field(default_factory=dict)  # INVALID: {field: [message, ...]}
    message: str = ""  # the underlying exception's own words, where it has some
    retry_after: int = 0
    limit: int = 0
    needed: int = 0
    balance: int = 0
    used: int = 0
    quota: int = 0
    method: str = ""

    @property
    def first_error(self) -> tuple[str, str]:
        """(field, its messages in one line) of an INVALID refusal: for APIs that name one field."""
        name, messages = next(iter(self.errors.items()), ("body", []))
        return name, " ".join(messages)


def _flatten(detail) -> dict:
    """DRF's nested ErrorDetail structure -> {field: [message, ...]} with plain strings."""
    if isinstance(detail, dict):
        return {name: [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])] for name, msgs in detail.items()}
    return {"request": [str(m) for m in (detail if isinstance(detail, list) else [detail])]}


def classify(exc: BaseException) -> Refusal:
    """The Refusal for an exception a request raised."""
    if isinstance(exc, InvalidInput):
        return Refusal(INVALID, errors={exc.field_name: [exc.message]})
    if isinstance(exc, exceptions.ValidationError):
        return Refusal(INVALID, errors=_flatten(exc.detail))
    if isinstance(exc, (RequestDataTooBig, BodyTooLarge, TooManyFieldsSent, TooManyFilesSent)):
        return Refusal(TOO_LARGE)
    if isinstance(exc, (exceptions.AuthenticationFailed, exceptions.NotAuthenticated)):
        return Refusal(BAD_KEY)
    if isinstance(exc, (exceptions.ParseError, exceptions.UnsupportedMediaType)):
        return Refusal(UNREADABLE)
    if isinstance(exc, exceptions.Throttled):
        return Refusal(THROTTLED, retry_after=int(exc.wait or 60))
    if isinstance(exc, QueueFull):
        return Refusal(QUEUE_FULL, limit=exc.limit)
    if isinstance(exc, InsufficientCredits):
        return Refusal(NO_CREDITS, needed=exc.needed, balance=exc.balance)
    if isinstance(exc, UploadQuotaFull):
        return Refusal(UPLOAD_QUOTA, used=exc.used, quota=exc.quota)
    if isinstance(exc, (JobNotFound, exceptions.NotFound)):
        return Refusal(NOT_FOUND)
    if isinstance(exc, IdempotencyConflict):
        return Refusal(CONFLICT)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return Refusal(METHOD, method=exc.args[0] if exc.args else "")
    if isinstance(exc, (redis.RedisError, OperationalError, InterfaceError)):
        logger.warning("A dependency is unavailable: %s", exc)
        return Refusal(UNAVAILABLE, retry_after=5)
    if isinstance(exc, exceptions.APIException):
        return Refusal(REFUSED, message=str(exc.detail))
    logger.exception("Unhandled request error", exc_info=exc)
    return Refusal(UNEXPECTED)
