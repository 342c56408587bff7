"""The v3 API's error envelope, in the one place every layer builds it from — Django's views and, before
Django sees a request, the web server (config/web.py). Nothing here imports Django."""


def message(status: str, text, **extra) -> dict:
    """A body carrying `text` under both `message` and the hosted API's `messege`."""
    return {"status": status, "message": text, "messege": text, **extra}
