from collections.abc import Mapping

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication

from accounts.keys import authenticate_key
from generation.api.errors import InvalidApiKey, InvalidRequest

KEY_HEADERS = ("Key", "X-API-Key")  # header names are case-insensitive: `key` is `Key`


def raw_key(request) -> str | None:
    """The key, from the first of: the body's `key`, `Authorization: Bearer`, a `Key` or `X-API-Key`
    header. Never from the query string: a key in a URL ends up in access logs and proxies' logs."""
    key = request.data.get("key")
    if key:
        return key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return next((request.headers[name].strip() for name in KEY_HEADERS if request.headers.get(name)), None)


class ApiKeyAuthentication(BaseAuthentication):
    """The API key, wherever real clients put it (see `raw_key`)."""

    def authenticate(self, request):
        data = request.data  # a body that is not JSON raises ParseError here -> "Invalid API Request"
        if not isinstance(data, Mapping):
            raise InvalidRequest()
        api_key = authenticate_key(raw_key(request))
        if api_key is None:
            raise InvalidApiKey()
        return api_key.user, api_key

    def authenticate_header(self, request):
        return "Bearer"


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The API key: in the JSON body as `key` (always works), as a Bearer token, or in a "
            "`Key` / `X-API-Key` header. Never in the query string.",
        }
