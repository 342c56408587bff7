"""Requests per minute per account (all its keys together), counted in Redis over the last 60 seconds.

Requests that make jobs count against the plan's `requests_per_minute`; polling (fetch, cancel,
system_load, account, model_list) has its own, higher limit: the larger of the plan's and
API_POLL_REQUESTS_PER_MINUTE."""

import math

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from billing import credits
from generation.infra.redis_client import within_rate


class AccountRateThrottle(BaseThrottle):
    scope = "poll"

    def allow_request(self, request, view):
        if request.auth is None:
            return True
        wait = within_rate(f"sdxl:rate:{self.scope}:{request.auth.user_id}", self.limit_for(request.auth), 60)
        self.retry_after = max(1, math.ceil(wait))
        return wait == 0

    def limit_for(self, api_key) -> int:
        per_minute = credits.account_for(api_key.user, loaded=True).plan.requests_per_minute
        return max(per_minute, settings.API_POLL_REQUESTS_PER_MINUTE)

    def wait(self):
        return self.retry_after


class GenerationRateThrottle(AccountRateThrottle):
    scope = "generate"

    def limit_for(self, api_key) -> int:
        return credits.account_for(api_key.user, loaded=True).plan.requests_per_minute
