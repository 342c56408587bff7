"""How the API reads a request: the body as JSON whatever the Content-Type says, and fields from the
query string for older clients that send them there."""

import json

from django.conf import settings
from django.utils.datastructures import MultiValueDict
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser
from rest_framework.request import Request

MAX_DEPTH = 32  # no client nests deeper; a deeper body is refused before anything walks it


class BodyTooLarge(ParseError):
    """More than DATA_UPLOAD_MAX_MEMORY_SIZE bytes (DRF reads the stream itself, past Django's check)."""


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def clean(data):
    """NUL characters removed from every string and key (no database stores them, no prompt needs
    them); a body nested deeper than MAX_DEPTH is refused. Iterative, so no body can exhaust the stack."""
    root = [data]
    stack = [(root, 0, 0)]
    while stack:
        container, index, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ParseError("The body is nested too deeply.")
        value = container[index]
        if isinstance(value, str):
            container[index] = value.replace("\x00", "")
        elif isinstance(value, list):
            stack.extend((value, i, depth + 1) for i in range(len(value)))
        elif isinstance(value, dict):
            cleaned = {key.replace("\x00", ""): item for key, item in value.items()}
            container[index] = cleaned
            keys = list(cleaned)
            stack.extend((_DictSlot(cleaned, key), 0, depth + 1) for key in keys)
    return root[0]


class _DictSlot:
    """Lets `clean` treat a dict entry like a list slot."""

    def __init__(self, mapping, key):
        self.mapping, self.key = mapping, key

    def __getitem__(self, _):
        return self.mapping[self.key]

    def __setitem__(self, _, value):
        self.mapping[self.key] = value


class AnyJSONParser(BaseParser):
    """Parse the body as JSON whatever Content-Type says: real clients send JSON as text/plain,
    form-encoded (curl -d) or with no Content-Type at all. NaN and Infinity are not JSON and are
    refused; see `clean` for the rest, which the key is spared."""

    media_type = "*/*"
    exact = "key"  # kept exactly as sent: a key with a NUL in it is not the key

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise BodyTooLarge()
        try:
            text = raw.decode(encoding)
            data = json.loads(text, parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            raise ParseError("The body is not valid JSON.") from exc
        if not isinstance(data, dict):
            return clean(data)
        sent = data.get(self.exact)
        data = clean(data)
        if self.exact in data:
            data[self.exact] = sent
        return data


class ObjectJSONParser(AnyJSONParser):
    """JSON bodies only (application/json), as the front-ends take them beside multipart forms, read the
    same careful way: bounded, not too deep, NULs removed."""

    media_type = "application/json"


def check_body(request):
    """A body the API can read: not larger than DATA_UPLOAD_MAX_MEMORY_SIZE (a multipart body's files
    count too: the web tier cuts every body there, config/asgi.py), and an object when it is JSON. Raises
    BodyTooLarge or ParseError."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
        raise BodyTooLarge()
    if not isinstance(request.data, dict):  # QueryDict is a dict: a form
        raise ParseError("The body must be a JSON object.")


class LenientRequest(Request):
    """A request whose fields may also come in the query string: older clients send every field there,
    with an empty or non-JSON body (`POST /api/v3/text2img?prompt=...`). The body wins where both have a
    field. The key is never read from the query string (URLs end up in logs)."""

    def _parse(self):
        query = clean({name: value for name, value in self._request.GET.items() if name != "key"})
        try:
            data, files = super()._parse()
        except ParseError as exc:
            if isinstance(exc, BodyTooLarge) or not query:
                raise
            return query, MultiValueDict()
        if query and isinstance(data, dict):
            data = {**query, **data}
        return data, files
