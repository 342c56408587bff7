"""API keys: creation and authentication. The full key is returned once and never stored.

A key is `PREFIX + SECRET`: a 12-character public prefix used to find the row and a 40-character
random secret. Keys carry ~238 bits of entropy, so a plain SHA-256 is the right hash: a slow
password hash would add milliseconds to every API call without adding safety.

What authentication loads (the key, its user, account and plan) is kept in Redis, as JSON, for
KEY_CACHE_SECONDS (through the process's one connection pool: Django's cache opens a connection per
thread, and the ASGI tier runs each request in a thread of its own), so that a request that needs nothing else (fetch of a finished job) costs no database
query; it is forgotten at once when the key, its user or account changes (a revoked key is refused at
once), and a plan's edit reaches its keys within KEY_CACHE_SECONDS.
"""

import functools
import hashlib
import hmac
import json
import logging
import secrets
import string
from datetime import timedelta

import redis
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from accounts.models import ApiKey, User
from billing.models import Account, Plan
from generation.infra import redis_client

PREFIX_LENGTH = 12
SECRET_LENGTH = 40
_ALPHABET = string.ascii_letters + string.digits
LAST_USED_RESOLUTION = timedelta(minutes=1)
KEY_CACHE_SECONDS = 60
NOT_CACHED = {"password"}  # left out of the cache: loaded from the database if ever read

logger = logging.getLogger(__name__)


def _random(length):
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


class KeyLimitReached(Exception):
    """Too many keys created this hour, or too many active keys."""


def create_api_key_limited(user, name: str = "") -> tuple[ApiKey, str]:
    """create_api_key for the dashboard: at most KEY_CREATIONS_PER_HOUR new keys an hour and
    MAX_ACTIVE_KEYS active ones per user (a stolen session cannot mint keys by the thousand)."""
    if redis_client.within_rate(f"sdxl:key-creations:{user.pk}", settings.KEY_CREATIONS_PER_HOUR, 3600):
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
    """The active key matching `raw_key`, with its user, account and plan loaded, or None. Records the
    last use (at most once a minute)."""
    if not isinstance(raw_key, str) or len(raw_key) != PREFIX_LENGTH + SECRET_LENGTH:
        return None
    prefix = raw_key[:PREFIX_LENGTH]
    api_key = _recalled(prefix)
    if api_key is None:
        api_key = _active_key(prefix)
        if api_key is None:
            return None
        _remember(api_key)
    if not hmac.compare_digest(api_key.hashed_key, hash_key(raw_key)):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
        _remember(api_key)
    return api_key


def _cache_key(prefix: str) -> str:
    return f"sdxl:apikey:{prefix}"


def _remember(api_key: ApiKey):
    """Keep what `_active_key` loaded, as JSON (never raises for the cache)."""
    user = api_key.user
    account = getattr(user, "billing", None)
    instances = (api_key, user, account, account.plan if account else None)
    rows = [
        None if instance is None else {name: getattr(instance, name) for name in _cached_fields(type(instance))}
        for instance in instances
    ]
    try:
        redis_client.connection().set(
            _cache_key(api_key.prefix), json.dumps(rows, cls=DjangoJSONEncoder), ex=KEY_CACHE_SECONDS
        )
    except redis.RedisError:
        logger.warning("Could not cache API key %s", api_key.prefix)


def _recalled(prefix: str) -> ApiKey | None:
    """The key, user, account and plan as `_active_key` loads them, from the cache (None if not there)."""
    try:
        cached = redis_client.connection().get(_cache_key(prefix))
    except redis.RedisError:
        return None
    if cached is None:
        return None
    instances = []
    for (model, _), row in zip(_KEY_TABLES, json.loads(cached)):
        if row is None:
            instances.append(None)
            continue
        fields = [model._meta.get_field(name) for name in _cached_fields(model)]
        if any(field.attname not in row for field in fields):
            return None  # cached by an older release (a field added since): loaded again
        values = [field.to_python(row[field.attname]) for field in fields]
        instances.append(model.from_db(connection.alias, [field.attname for field in fields], values))
    api_key, user, account, plan = instances
    api_key.user = user
    if account is not None:
        account.plan = plan
        user.billing = account
    return api_key


@functools.cache
def _cached_fields(model) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields if field.name not in NOT_CACHED]


def forget(*prefixes: str):
    """Drop cached keys (revoked, or their user or account changed)."""
    try:
        redis_client.connection().delete(*(_cache_key(prefix) for prefix in prefixes))
    except redis.RedisError:
        logger.warning("Could not forget cached API keys %s", prefixes)


@receiver(post_save, sender=ApiKey)
@receiver(post_delete, sender=ApiKey)
def _key_changed(sender, instance, **kwargs):
    forget(instance.prefix)


@receiver(post_save, sender=User)
@receiver(post_save, sender=Account)
def _owner_changed(sender, instance, **kwargs):
    user_id = instance.pk if sender is User else instance.user_id
    prefixes = list(ApiKey.objects.filter(user_id=user_id).values_list("prefix", flat=True))
    if prefixes:
        forget(*prefixes)


def _active_key(prefix: str) -> ApiKey | None:
    """The unrevoked key of an active user with this prefix, and its user, account and plan, from one
    query.

    Every API request runs it, so it is SQL written once per process from the models' fields rather
    than `select_related("user", "user__billing__plan")`, whose compilation of the same join costs
    ~2.5 ms of Python per call (measured in bench/RESULTS.md). The ORM's own converters turn the
    row into values, so the instances are the ones the ORM would build.
    """
    sql, layout = _key_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, [prefix, False, True])
        row = cursor.fetchone()
    if row is None:
        return None
    api_key, user, account, plan = _instances(row, layout)
    api_key.user = user
    if account is not None:  # an account is made on first use: a user may not have one yet
        account.plan = plan
        user.billing = account
    return api_key


_KEY_TABLES = ((ApiKey, "k"), (User, "u"), (Account, "a"), (Plan, "p"))


@functools.cache
def _key_query():
    """The lookup's SQL and, per model, its fields and their converters, in the row's order."""
    quote = connection.ops.quote_name
    columns, layout = [], []
    for model, alias in _KEY_TABLES:
        fields = model._meta.concrete_fields
        columns += [f"{alias}.{quote(field.column)}" for field in fields]
        converters = []
        for field in fields:
            column = field.get_col(alias)
            converters.append((column, connection.ops.get_db_converters(column) + column.get_db_converters(connection)))
        layout.append((model, [field.attname for field in fields], converters, fields.index(model._meta.pk)))

    def table(model):
        return quote(model._meta.db_table)

    sql = (
        f"SELECT {', '.join(columns)} FROM {table(ApiKey)} k "
        f"JOIN {table(User)} u ON u.id = k.user_id "
        f"LEFT JOIN {table(Account)} a ON a.user_id = u.id "
        f"LEFT JOIN {table(Plan)} p ON p.id = a.plan_id "
        f"WHERE k.prefix = %s AND k.revoked = %s AND u.is_active = %s"
    )
    return sql, layout


def _instances(row, layout) -> list:
    """One instance per model of the layout from its slice of `row` (None where a LEFT JOIN found none)."""
    instances, start = [], 0
    for model, attnames, converters, pk_index in layout:
        values = list(row[start : start + len(attnames)])
        start += len(attnames)
        if values[pk_index] is None:  # no row
            instances.append(None)
            continue
        for index, (column, functions) in enumerate(converters):
            for convert in functions:
                values[index] = convert(values[index], column, connection)
        instances.append(model.from_db(connection.alias, attnames, values))
    return instances


def set_default_checkpoint(api_key: ApiKey, public_id: str):
    """The checkpoint of the key's A1111-API requests that name none (saved, so its cache is forgotten)."""
    api_key.default_checkpoint = public_id
    api_key.save(update_fields=["default_checkpoint"])
