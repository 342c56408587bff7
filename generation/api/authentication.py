from collections.abc import Mapping

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication

from accounts.keys import authenticate_key
from generation.api.errors import InvalidApiKey, InvalidRequest


class ApiKeyAuthentication(BaseAuthentication):
    """The v3 key: `key` in the JSON body (always works), else `Authorization: Bearer <key>`."""

    def authenticate(self, request):
        data = request.data  # a body that is not JSON raises ParseError here -> "Invalid API Request"
        if not isinstance(data, Mapping):
            raise InvalidRequest()
        raw_key = data.get("key")
        if not raw_key:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            raw_key = token.strip() if scheme.lower() == "bearer" else None
        api_key = authenticate_key(raw_key)
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
            "description": "The API key, in the JSON body as `key` (always works) or as a Bearer token.",
        }
