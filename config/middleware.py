"""Request handling that comes before any app's."""

from urllib.parse import urlsplit

from django.conf import settings


class AbsoluteFormMiddleware:
    """A request whose target is in absolute form (`POST http://host/api/v3/fetch/1 HTTP/1.1`, as some
    clients send the `fetch_result` URL over an existing connection) is routed by its path. The Host
    header, checked against ALLOWED_HOSTS as usual, still says which site it is for."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info.startswith(("http://", "https://")):
            path = urlsplit(request.path_info).path or "/"
            request.path_info = request.path = request.META["PATH_INFO"] = path
        return self.get_response(request)


def _origin(url: str | None) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy(inline_styles: bool = False) -> str:
    """Scripts and styles from this site only (no inline ones, so an injected tag cannot run), images
    also from the storage's host (S3), forms to this site and Stripe's pages, no framing. A page that
    shows no user content may allow inline styles (`inline_styles`)."""
    storage = settings.STORAGES["default"].get("OPTIONS", {})
    images = {
        _origin(settings.MEDIA_URL),
        _origin(storage.get("endpoint_url")),
        f"https://{storage['custom_domain']}" if storage.get("custom_domain") else "",
        f"https://{storage['bucket_name']}.s3.amazonaws.com" if storage.get("bucket_name") else "",
    }
    stripe = {"https://checkout.stripe.com", "https://billing.stripe.com", _origin(settings.STRIPE_API_BASE)}
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'" if inline_styles else "style-src 'self'",
            " ".join(["img-src 'self' data: blob:", *sorted(images - {""})]),
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            " ".join(["form-action 'self'", *sorted(stripe - {""})]),
            "frame-ancestors 'none'",
        ]
    )


class ContentSecurityPolicyMiddleware:
    """Every response gets the Content-Security-Policy header (pages are written to pass it); one marked
    `allow_inline_styles` by its view allows inline styles."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = content_security_policy(getattr(response, "allow_inline_styles", False))
        response.headers.setdefault("Content-Security-Policy", policy)
        return response
