"""API keys: creation and authentication. The full key is returned once and never stored.

A key is `PREFIX + SECRET`: a 12-character public prefix used to find the row and a 40-character
random secret. Keys carry ~238 bits of entropy, so a plain SHA-256 is the right hash: a slow
password hash would add milliseconds to every API call without adding safety.
"""

import hashlib
import hmac
import secrets
import string
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from accounts.models import ApiKey

PREFIX_LENGTH = 12
SECRET_LENGTH = 40
_ALPHABET = string.ascii_letters + string.digits
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _random(length):
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


class KeyLimitReached(Exception):
    """Too many keys created this hour, or too many active keys."""


def create_api_key_limited(user, name: str = "") -> tuple[ApiKey, str]:
    """create_api_key for the dashboard: at most KEY_CREATIONS_PER_HOUR new keys an hour and
    MAX_ACTIVE_KEYS active ones per user (a stolen session cannot mint keys by the thousand)."""
    window = f"key-creations:{user.pk}:{int(timezone.now().timestamp() // 3600)}"
    cache.add(window, 0, timeout=3600)
    if cache.incr(window) > settings.KEY_CREATIONS_PER_HOUR:
        raise KeyLimitReached(f"At most {settings.KEY_CREATIONS_PER_HOUR} keys can be created an hour.")
    if ApiKey.objects.filter(user=user, revoked=False).count() >= settings.MAX_ACTIVE_KEYS:
        raise KeyLimitReached(f"At most {settings.MAX_ACTIVE_KEYS} keys can be active; revoke one first.")
    return create_api_key(user, name)


def create_api_key(user, name: str = "") -> tuple[ApiKey, str]:
    """Create a key for `user`; return the row and the full key (show it once)."""
    prefix = _random(PREFIX_LENGTH)
    raw_key = prefix + _random(SECRET_LENGTH)
    api_key = ApiKey.objects.create(user=user, name=name, prefix=prefix, hashed_key=hash_key(raw_key))
    return api_key, raw_key


def authenticate_key(raw_key) -> ApiKey | None:
    """The active key matching `raw_key`, or None. Records the last use (at most once a minute)."""
    if not isinstance(raw_key, str) or len(raw_key) != PREFIX_LENGTH + SECRET_LENGTH:
        return None
    api_key = (
        ApiKey.objects.select_related("user", "user__billing__plan")
        .filter(prefix=raw_key[:PREFIX_LENGTH], revoked=False, user__is_active=True)
        .first()
    )
    if api_key is None or not hmac.compare_digest(api_key.hashed_key, hash_key(raw_key)):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key
