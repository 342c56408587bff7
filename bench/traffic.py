"""The load harness shared by bench/load.py and bench/faults.py: its own Redis, the real web server
and a supervised worker (restarted when it exits, as systemd or Kubernetes would), many accounts, mixed
API traffic from client threads, and the checks that nothing was lost or charged wrongly."""

import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict

import common
import requests

sys.path.insert(0, str(common.ROOT))
from config import redis_server  # noqa: E402

PNG_64 = None  # a small base64 PNG for img2img, made at start


class Cluster:
    """Redis (ours, so it can be restarted), gunicorn and one supervised worker."""

    def __init__(self, web_port: int, web_workers: int = 4):
        self.redis_port = redis_server.free_port()
        self.redis_dir = common.ROOT / "var" / "bench-redis"
        self.redis = redis_server.start(self.redis_port, self.redis_dir)
        os.environ["REDIS_URL"] = f"redis://127.0.0.1:{self.redis_port}/0"
        self.web_port, self.web_workers = web_port, web_workers
        self.web = self.worker = None
        self.worker_starts = 0
        self._supervise = True

    def start(self):
        """The web server and the worker, once the worker has loaded the model and takes jobs."""
        from generation import liveness

        self.web = common.start_web(self.web_port, self.web_workers)
        self.worker = self._start_worker()
        while not liveness.live_workers():
            time.sleep(0.2)
        threading.Thread(target=self._supervisor, daemon=True).start()

    def _start_worker(self):
        self.worker_starts += 1
        return subprocess.Popen(
            [sys.executable, "manage.py", "rqworker", "high", "default", "low"],
            cwd=common.ROOT,
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=open(common.ROOT / "var" / "bench-worker.log", "ab"),
        )

    def _supervisor(self):
        while self._supervise:
            if self.worker.poll() is not None:
                time.sleep(1)
                self.worker = self._start_worker()
            time.sleep(0.5)

    def kill_worker(self):
        self.worker.kill()

    def restart_redis(self, down_seconds: float):
        self.redis.terminate()
        self.redis.wait()
        time.sleep(down_seconds)
        self.redis = redis_server.start(self.redis_port, self.redis_dir)

    def stop(self):
        self._supervise = False
        common.stop(*(p for p in (self.web, self.worker) if p))
        self.redis.terminate()
        self.redis.wait()


def make_accounts(count: int, credits_each: int, max_queued: int, per_minute: int) -> list[tuple]:
    """(user, key) pairs on a plan with these limits, each with exactly `credits_each` credits."""
    from accounts.keys import create_api_key
    from accounts.models import User
    from billing import credits
    from billing.models import Account, Plan

    plan, _ = Plan.objects.update_or_create(
        slug="load",
        defaults={
            "name": "Load",
            "monthly_credits": credits_each,
            "max_queued_jobs": max_queued,
            "requests_per_minute": per_minute,
            "max_resolution": 128,
            "max_samples": 2,
            "is_public": False,
        },
    )
    accounts = []
    for i in range(count):
        user, _ = User.objects.get_or_create(email=f"load{i}@example.com")
        account = credits.account_for(user)
        Account.objects.filter(pk=account.pk).update(plan=plan)
        credits.grant(account, credits_each - account.balance, reason="load test")
        _, key = create_api_key(user, name="load")
        accounts.append((user, key))
    return accounts


def _png() -> str:
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (30, 120, 200)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class Traffic:
    """Client threads sending a mix of API calls for `seconds`; every answer is recorded."""

    MIX = [("text2img", 40), ("fetch", 30), ("system_load", 12), ("account", 5), ("cancel", 5), ("img2img", 8)]

    def __init__(self, base_url: str, accounts, threads: int, seconds: float, webhook: str | None = None):
        self.base_url, self.accounts, self.threads, self.seconds = base_url, accounts, threads, seconds
        self.webhook = webhook
        self.latency = defaultdict(list)
        self.outcomes = Counter()
        self.bad = []  # answers outside the envelope: (endpoint, status code, text)
        self.accepted = defaultdict(set)  # key -> job ids accepted
        self.lock = threading.Lock()
        self.stop_at = None

    def run(self):
        """Send the traffic. The clients run niced: on a machine that also runs the servers, they stand
        in for users on other machines and must not starve the worker."""
        global PNG_64
        PNG_64 = PNG_64 or _png()
        os.nice(10)
        self.stop_at = time.monotonic() + self.seconds
        workers = [threading.Thread(target=self._client, args=(i,)) for i in range(self.threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _client(self, index):
        rng = random.Random(index)
        session = requests.Session()
        names, weights = zip(*self.MIX)
        while time.monotonic() < self.stop_at:
            _, key = rng.choice(self.accounts)
            action = rng.choices(names, weights)[0]
            path, body = self._request(action, key, rng)
            started = time.perf_counter()
            try:
                response = session.post(self.base_url + path, json=body, timeout=30)
                elapsed = time.perf_counter() - started
                answer = response.json()
                ok = response.status_code == 200 and isinstance(answer, dict) and "status" in answer
            except (requests.RequestException, ValueError) as exc:
                elapsed, answer, ok = (
                    time.perf_counter() - started,
                    {"status": f"transport: {type(exc).__name__}"},
                    False,
                )
                response = None
            with self.lock:
                self.latency[action].append(elapsed)
                outcome = answer.get("status")
                message = answer.get("message")
                if outcome == "error" and isinstance(message, str):
                    outcome = f"error: {message[:40]}"
                self.outcomes[(action, outcome)] += 1
                if not ok:
                    self.bad.append((action, getattr(response, "status_code", None), str(answer)[:200]))
                if action in ("text2img", "img2img") and answer.get("status") in ("processing", "success"):
                    self.accepted[key].add(answer["id"])

    def _request(self, action, key, rng):
        own = list(self.accepted[key])
        if action in ("text2img", "img2img"):
            body = {
                "key": key,
                "prompt": "load",
                "width": 64,
                "height": 64,
                "instant_response": "yes",
                "num_inference_steps": rng.choice([1, 2, 4]),
                "samples": rng.choice([1, 1, 2]),
            }
            if self.webhook and rng.random() < 0.2:
                body["webhook"] = self.webhook
            if action == "img2img":
                body["init_image"] = PNG_64
            return f"/api/v3/{action}", body
        if action in ("fetch", "cancel") and own:
            return f"/api/v3/{action}/{rng.choice(own)}", {"key": key}
        if action == "cancel":
            return "/api/v3/cancel/1", {"key": key}
        if action == "fetch":
            return "/api/v3/fetch/1", {"key": key}
        return f"/api/v3/{action}", {"key": key}


def drain(timeout: float) -> int:
    """Wait until no job is queued or running; the number still unfinished at the deadline."""
    from generation.models import Job

    deadline = time.monotonic() + timeout
    while True:
        left = Job.objects.filter(status__in=["queued", "running"]).count()
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(1)


def verify(traffic: Traffic, credits_each: int) -> dict:
    """Every accepted job ended; every account's balance equals its credits minus its successful jobs."""
    from billing import credits as ledger
    from billing.models import Account
    from generation.kinds import cost
    from generation.models import Job

    accepted = set().union(*traffic.accepted.values()) if traffic.accepted else set()
    states = Counter(Job.objects.filter(pk__in=accepted).values_list("status", flat=True))
    missing = len(accepted) - sum(states.values())
    balance_errors = []
    for account in Account.objects.filter(user__email__startswith="load"):
        charged = sum(cost(job.parameters) for job in Job.objects.filter(user_id=account.pk, status="success"))
        expected = credits_each - charged
        if account.balance != expected or ledger.ledger_total(account) != account.balance or account.unfinished_jobs:
            balance_errors.append((account.user_id, account.balance, expected, account.unfinished_jobs))
    webhooks = dict(
        Counter(Job.objects.filter(pk__in=accepted).exclude(webhook_status="").values_list("webhook_status", flat=True))
    )
    return {
        "accepted": len(accepted),
        "states": dict(states),
        "missing": missing,
        "balance_errors": balance_errors,
        "webhooks": webhooks,
    }


def report(traffic: Traffic, seconds: float, checks: dict, title: str) -> str:
    lines = [f"## {title}", ""]
    total = sum(traffic.outcomes.values())
    lines.append(
        f"{total} requests in {seconds:.0f} s ({total / seconds:.0f}/s) from {traffic.threads} client "
        f"threads, {len(traffic.accounts)} accounts"
    )
    lines += ["", "| endpoint | requests | p50 | p99 |", "| --- | --- | --- | --- |"]
    for action, values in sorted(traffic.latency.items()):
        lines.append(
            f"| {action} | {len(values)} | {common.percentile(values, 50) * 1000:.0f} ms | "
            f"{common.percentile(values, 99) * 1000:.0f} ms |"
        )
    lines += ["", "| endpoint | answer | count |", "| --- | --- | --- |"]
    for (action, outcome), count in sorted(traffic.outcomes.items(), key=lambda item: (item[0][0], -item[1])):
        lines.append(f"| {action} | {outcome} | {count} |")
    lines += [
        "",
        f"- answers outside the envelope (non-200, non-JSON, no status): {len(traffic.bad)}"
        + (f" — e.g. {traffic.bad[:3]}" if traffic.bad else ""),
        f"- jobs accepted: {checks['accepted']}; final states: {checks['states']}; "
        f"unfinished or missing: {checks['missing'] + checks['states'].get('queued', 0) + checks['states'].get('running', 0)}",
        f"- webhook deliveries by outcome: {checks['webhooks']}",
        f"- accounts whose balance differs from credits − successful jobs (or whose ledger does not add up): "
        f"{len(checks['balance_errors'])}" + (f" {checks['balance_errors'][:5]}" if checks["balance_errors"] else ""),
    ]
    return "\n".join(lines)


def save(text: str, name: str):
    out = common.ROOT / "var" / f"{name}.md"
    out.write_text(text + "\n")
    print(text)
    print(f"\n(also in {out})")
