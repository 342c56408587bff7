"""Requests per minute per API key, counted in Redis (fixed one-minute windows)."""

import time

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from generation import queueing


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        if request.auth is None:
            return True
        limit = self.limit_for(request.auth)
        now = time.time()
        window = int(now // 60)
        key = f"sdxl:rate:{request.auth.pk}:{window}"
        with queueing.connection().pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 61)
            count, _ = pipe.execute()
        self.retry_after = max(1, int(60 - now % 60))
        return count <= limit

    @staticmethod
    def limit_for(api_key) -> int:
        return settings.API_REQUESTS_PER_MINUTE

    def wait(self):
        return self.retry_after
