"""Django's error pages for requests no view answered, in the shape of the API a path belongs to: the
hosted API's envelope under /api/, OpenAI's error object under /v1/, A1111's `detail` under /sdapi/,
Django's pages elsewhere (clients never get an HTML page)."""

import re

from django.core.exceptions import DisallowedHost
from django.http import JsonResponse
from django.views import defaults

from generation import kinds
from generation.answers import openai as openai_answers
from generation.answers.envelope import message


def unknown_endpoint(method: str, path: str) -> dict:
    """A path that is no endpoint (not to be confused with "Request not found", an unknown job)."""
    return message("error", f"Unknown endpoint: {method} {path}")


def bad_request_page(request, exception=None):
    """A request Django refuses before any view (a Host header not in ALLOWED_HOSTS, say)."""
    if request.path.startswith("/api/"):
        reason = "this server does not answer for that host" if isinstance(exception, DisallowedHost) else "bad request"
        return JsonResponse(message("error", f"Invalid API Request: {reason}"))
    return defaults.bad_request(request, exception)


VERSIONED = re.compile(r"^/api/(?:sandbox/)?(v\d+)/(.+?)/?$")


def not_offered(version: str, operation: str) -> dict:
    """A path of the hosted service's API this deployment does not serve (interior design, face swap, its
    server administration, ...): said plainly, with what it does offer under that version."""
    root = f"api/{version}"
    offered = sorted(
        f"{family.removeprefix(root).strip('/')}/{path}".strip("/")
        for family, path, _ in kinds.routes()
        if family == root or family.startswith(root + "/")
    )
    listing = f" The ones offered under /api/{version}/ are: {', '.join(offered)}." if offered else ""
    return message("error", f"The operation {operation!r} is not offered on this deployment.{listing}")


def page_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        if versioned := VERSIONED.match(request.path):
            return JsonResponse(not_offered(*versioned.groups()))
        return JsonResponse(unknown_endpoint(request.method, request.path))
    if request.path.startswith("/v1/"):
        status, body = openai_answers.error(404, f"Unknown path: {request.method} {request.path}", code="unknown_url")
        return JsonResponse(body, status=status)
    if request.path.startswith("/sdapi/"):
        return JsonResponse({"detail": "Not Found"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error_page(request):
    if request.path.startswith("/api/"):
        return JsonResponse(message("error", "Something went wrong, try again"))
    return defaults.server_error(request)
