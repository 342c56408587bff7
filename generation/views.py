"""Non-API endpoints of the generation app: stored files (without a front proxy), /healthz for load
balancers and orchestrators, /metrics for Prometheus."""

import hmac
from pathlib import PurePosixPath

from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from django.http import Http404, HttpResponse, JsonResponse
from django.views import static
from django.views.decorators.cache import never_cache
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from generation import monitoring


def media(request, path):
    """A stored file from MEDIA_ROOT by its exact name: nothing outside it, no directory listings."""
    if not path or path.endswith("/") or ".." in PurePosixPath(path).parts:
        raise Http404()
    try:
        return static.serve(request, path, document_root=settings.MEDIA_ROOT)
    except SuspiciousFileOperation as exc:
        raise Http404() from exc


@never_cache
def healthz(request):
    """200 with every check when database, Redis and a worker are up; 503 naming what is down."""
    report = monitoring.health()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


@never_cache
def metrics(request):
    """Prometheus text format; needs `Authorization: Bearer <METRICS_TOKEN>` (off when no token is set)."""
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
        return HttpResponse("metrics need a bearer token\n", status=401 if token else 404, content_type="text/plain")
    return HttpResponse(monitoring.render_metrics(), content_type=CONTENT_TYPE_LATEST)
