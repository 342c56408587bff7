"""Every API error body, built in one place. Errors are HTTP 200 with `status` "error"/"failed"."""

import logging

import redis
from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions
from rest_framework.response import Response

from billing.credits import InsufficientCredits, QueueFull
from generation.answers import openai as openai_answers
from generation.answers.envelope import message
from generation.api.parsers import BodyTooLarge
from generation.inputs.storage import UploadQuotaFull
from generation.kinds.base import InvalidInput
from generation.lifecycle.jobs import IdempotencyConflict
from generation.services import JobNotFound

logger = logging.getLogger(__name__)

TIP = (
    "1. Make sure you are passing Content-Type: application/json in header. 2. Make sure you are doing "
    "POST request with valid JSON. 3. Make sure your JSON does not have error, use jsonlint to validate "
    "json array. 4. Make sure you have valid API key."
)


def invalid_key() -> dict:
    return {"status": "error", "message": "Invalid Api Key", "tip": TIP}


def invalid_request() -> dict:
    return {"status": "error", "message": "Invalid API Request", "tip": TIP}


def validation(errors: dict) -> dict:
    return message("error", errors)


RATE_LIMIT_TIPS = "Slow down: wait for the time in the Retry-After header, or upgrade your plan for higher limits."


def rate_limited() -> dict:
    return {"status": "error", "message": "Rate limit exceeded", "tips": RATE_LIMIT_TIPS}


def queue_full(limit: int) -> dict:
    return {
        "status": "error",
        "message": f"Rate limit exceeded. Maximum {limit} queued requests allowed.",
        "tips": RATE_LIMIT_TIPS,
    }


def insufficient_credits(needed: int, balance: int, billing_url: str) -> dict:
    text = f"Insufficient credits. This request needs {needed} credits and your balance is {balance}."
    return {
        "status": "error",
        "message": text,
        "messege": text,
        "billing_url": billing_url,
        "tip": f"Buy credits or upgrade your plan at {billing_url}",
    }


def too_large() -> dict:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE // (1024 * 1024)
    return message("error", f"Request body too large: at most {limit} MB")


def unavailable() -> dict:
    return message("error", "Service temporarily unavailable, try again in a few seconds")


def not_found() -> dict:
    return message("error", "Request not found")


def streams_unavailable() -> dict:
    """An event stream asked of a server that cannot hold one without a thread (WSGI)."""
    return message("error", "Event streams need the ASGI web server (config/asgi.py); poll fetch instead")


def server_error() -> dict:
    return message("error", "Something went wrong, try again")


class InvalidApiKey(exceptions.AuthenticationFailed):
    pass


class InvalidRequest(exceptions.ParseError):
    pass


def _flatten(detail) -> dict:
    """DRF's nested ErrorDetail structure -> {field: [message, ...]} with plain strings."""
    if isinstance(detail, dict):
        return {field: [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])] for field, msgs in detail.items()}
    return {"request": [str(m) for m in (detail if isinstance(detail, list) else [detail])]}


def refused(exc, request) -> dict | None:
    """The body for an error the services raise (None for any other exception). The API and the
    dashboard's playground answer these alike."""
    if isinstance(exc, InvalidInput):
        return validation({exc.field_name: [exc.message]})
    if isinstance(exc, JobNotFound):
        return not_found()
    if isinstance(exc, IdempotencyConflict):
        return message(
            "error", "Idempotency-Key already used with a different request: use a new key for a new request"
        )
    if isinstance(exc, QueueFull):
        return queue_full(exc.limit)
    if isinstance(exc, InsufficientCredits):
        return insufficient_credits(exc.needed, exc.balance, request.build_absolute_uri("/billing/"))
    if isinstance(exc, UploadQuotaFull):
        used, quota = exc.used // 2**20, exc.quota // 2**20
        return message(
            "error",
            f"Your upload storage is full ({used} of {quota} MB); uploads are deleted after "
            f"{settings.UPLOAD_RETENTION_DAYS} days.",
        )
    return None


def not_offered(operation: str, offered: list[str]) -> dict:
    """An image-editing operation this deployment does not run: said plainly, never charged."""
    return message(
        "error",
        f"The image editing operation {operation!r} is not offered on this deployment. "
        f"The ones offered are: {', '.join(offered)}.",
    )


def exception_handler(exc, context):
    """DRF's exception hook: map every exception to the contract's body, always HTTP 200."""
    body = refused(exc, context["request"])
    if body is not None:
        return Response(body, status=200)
    if isinstance(exc, (RequestDataTooBig, BodyTooLarge)):
        body = too_large()
    elif isinstance(exc, (exceptions.AuthenticationFailed, exceptions.NotAuthenticated)):
        body = invalid_key()
    elif isinstance(exc, (exceptions.ParseError, exceptions.UnsupportedMediaType)):
        body = invalid_request()
    elif isinstance(exc, exceptions.ValidationError):
        body = validation(_flatten(exc.detail))
    elif isinstance(exc, exceptions.NotFound):
        body = not_found()
    elif isinstance(exc, exceptions.Throttled):
        return Response(rate_limited(), status=200, headers={"Retry-After": str(int(exc.wait or 60))})
    elif isinstance(exc, exceptions.MethodNotAllowed):
        body = message("error", "Method not allowed, use POST")
    elif isinstance(exc, (redis.RedisError, OperationalError, InterfaceError)):
        logger.warning("A dependency is unavailable: %s", exc)
        return Response(unavailable(), status=200, headers={"Retry-After": "5"})
    else:
        logger.exception("Unhandled API error", exc_info=exc)
        body = server_error()
    return Response(body, status=200)


def unknown_endpoint(method: str, path: str) -> dict:
    """A path that is no endpoint (not to be confused with "Request not found", an unknown job)."""
    return message("error", f"Unknown endpoint: {method} {path}")


def bad_request_page(request, exception=None):
    """A request Django refuses before any view (a Host header not in ALLOWED_HOSTS, say): the contract's
    body under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        reason = "this server does not answer for that host" if isinstance(exception, DisallowedHost) else "bad request"
        return JsonResponse(message("error", f"Invalid API Request: {reason}"))
    return defaults.bad_request(request, exception)


def page_not_found(request, exception=None):
    """Unknown URL: the contract's body under /api/ (clients never get an HTML page), the front-ends' own
    under /v1/ and /sdapi/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(unknown_endpoint(request.method, request.path))
    if request.path.startswith("/v1/"):
        status, body = openai_answers.error(404, f"Unknown path: {request.method} {request.path}", code="unknown_url")
        return JsonResponse(body, status=status)
    if request.path.startswith("/sdapi/"):
        return JsonResponse({"detail": "Not Found"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error_page(request):
    if request.path.startswith("/api/"):
        return JsonResponse(server_error())
    return defaults.server_error(request)
