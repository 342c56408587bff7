"""Every error body of the hosted API, built in one place from a Refusal (generation/web/refusals.py).
Errors are HTTP 200 with `status` "error"/"failed"."""

from django.conf import settings
from rest_framework import exceptions
from rest_framework.response import Response

from generation.answers.envelope import message
from generation.web import refusals
from generation.web.refusals import Refusal

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


def answer(refusal: Refusal, request) -> dict:
    """The hosted API's body for a refusal (the playground answers its refusals alike)."""
    reason = refusal.reason
    if reason == refusals.INVALID:
        return validation(refusal.errors)
    if reason == refusals.NO_CREDITS:
        return insufficient_credits(refusal.needed, refusal.balance, request.build_absolute_uri("/billing/"))
    if reason == refusals.QUEUE_FULL:
        return queue_full(refusal.limit)
    if reason == refusals.UPLOAD_QUOTA:
        used, quota = refusal.used // 2**20, refusal.quota // 2**20
        return message(
            "error",
            f"Your upload storage is full ({used} of {quota} MB); uploads are deleted after "
            f"{settings.UPLOAD_RETENTION_DAYS} days.",
        )
    if reason == refusals.CONFLICT:
        return message(
            "error", "Idempotency-Key already used with a different request: use a new key for a new request"
        )
    return PLAIN[reason]()


PLAIN = {  # the refusals whose body says no more than that
    refusals.UNREADABLE: lambda: invalid_request(),
    refusals.REFUSED: lambda: invalid_request(),
    refusals.TOO_LARGE: lambda: too_large(),
    refusals.BAD_KEY: lambda: invalid_key(),
    refusals.THROTTLED: lambda: rate_limited(),
    refusals.NOT_FOUND: lambda: not_found(),
    refusals.METHOD: lambda: message("error", "Method not allowed, use POST"),
    refusals.UNAVAILABLE: lambda: unavailable(),
    refusals.UNEXPECTED: lambda: server_error(),
}


def not_offered(operation: str, offered: list[str]) -> dict:
    """An image-editing operation this deployment does not run: said plainly, never charged."""
    return message(
        "error",
        f"The image editing operation {operation!r} is not offered on this deployment. "
        f"The ones offered are: {', '.join(offered)}.",
    )


def exception_handler(exc, context):
    """DRF's exception hook: every exception as the contract's body, always HTTP 200 (with Retry-After
    when waiting helps)."""
    refusal = refusals.classify(exc)
    headers = {"Retry-After": str(refusal.retry_after)} if refusal.retry_after else None
    return Response(answer(refusal, context["request"]), status=200, headers=headers)
