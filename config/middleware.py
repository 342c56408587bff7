"""Request handling that comes before any app's."""

from urllib.parse import urlsplit


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
