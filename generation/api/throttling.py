"""Requests per minute per account (all its keys together), counted in Redis (fixed one-minute windows).

Requests that make jobs count against the plan's `requests_per_minute`; polling (fetch, cancel,
system_load, account, model_list) has its own, higher limit: the larger of the plan's and
API_POLL_REQUESTS_PER_MINUTE."""

import time

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from billing import credits
from generation.redis_client import connection


class AccountRateThrottle(BaseThrottle):
    scope = "poll"

    def allow_request(self, request, view):
        if request.auth is None:
            return True
        limit = self.limit_for(request.auth)
        now = time.time()
        key = f"sdxl:rate:{self.scope}:{request.auth.user_id}:{int(now // 60)}"
        with connection().pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 61)
            count, _ = pipe.execute()
        self.retry_after = max(1, int(60 - now % 60))
        return count <= limit

    def limit_for(self, api_key) -> int:
        per_minute = credits.account_for(api_key.user, loaded=True).plan.requests_per_minute
        return max(per_minute, settings.API_POLL_REQUESTS_PER_MINUTE)

    def wait(self):
        return self.retry_after


class GenerationRateThrottle(AccountRateThrottle):
    scope = "generate"

    def limit_for(self, api_key) -> int:
        return credits.account_for(api_key.user, loaded=True).plan.requests_per_minute
