"""Test settings: real PostgreSQL and Redis when reachable, else SQLite and an embedded Redis."""

import os

from tests import environment

environment.prepare()

from config.settings import *  # noqa: E402,F403
from config.settings import DATABASES, VAR_DIR  # noqa: E402

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory: the worker subprocess must see the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast user creation in tests only

# Queues no regular worker serves: "parked" jobs stay queued, "isolated" ones run in-process in a test.
RQ_QUEUES = {**RQ_QUEUES, "parked": RQ_QUEUES["default"], "isolated": RQ_QUEUES["default"]}  # noqa: F405

# Static files straight from the app folders (no collectstatic before the tests).
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405

# The storage-failure tests start workers whose media disk runs out of room (tests/storage_faults.py).
if os.environ.get("TORN_WRITES"):
    STORAGES = {**STORAGES, "default": {"BACKEND": "tests.storage_faults.TornWrites"}}  # noqa: F405
