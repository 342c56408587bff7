from rest_framework.parsers import JSONParser


class AnyJSONParser(JSONParser):
    """Parse the body as JSON whatever Content-Type says: real clients send JSON as text/plain,
    form-encoded (curl -d) or with no Content-Type at all."""

    media_type = "*/*"
