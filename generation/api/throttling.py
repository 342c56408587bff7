"""Requests per minute per API key, counted in Redis (fixed one-minute windows)."""

import time

from rest_framework.throttling import BaseThrottle

from billing import credits
from generation.redis_client import connection


class ApiKeyRateThrottle(BaseThrottle):
    def allow_request(self, request, view):
        if request.auth is None:
            return True
        limit = self.limit_for(request.auth)
        now = time.time()
        window = int(now // 60)
        key = f"sdxl:rate:{request.auth.pk}:{window}"
        with connection().pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 61)
            count, _ = pipe.execute()
        self.retry_after = max(1, int(60 - now % 60))
        return count <= limit

    @staticmethod
    def limit_for(api_key) -> int:
        return credits.account_for(api_key.user, loaded=True).plan.requests_per_minute

    def wait(self):
        return self.retry_after
