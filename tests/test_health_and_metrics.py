"""/healthz (database, Redis, a live worker; 503 when one is down) and Prometheus /metrics."""

import requests

from config import redis_server
from generation.lifecycle import jobs
from tests.conftest import ROOT
from tests.test_fetch import _params

TOKEN = {"Authorization": "Bearer test-metrics-token"}


def test_healthy(live_server, worker):
    response = requests.get(live_server.url + "/healthz", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert body["checks"]["workers"]["count"] >= 1


def test_redis_stopped_is_503(live_server, worker, settings):
    port = redis_server.free_port()
    own_redis = redis_server.start(port, ROOT / "var" / "test-redis-health")
    try:
        url = f"redis://127.0.0.1:{port}/0?socket_connect_timeout=2&socket_timeout=5"
        settings.RQ_QUEUES = {name: {**config, "URL": url} for name, config in settings.RQ_QUEUES.items()}
        assert requests.get(live_server.url + "/healthz", timeout=10).json()["checks"]["redis"]["ok"]
        own_redis.terminate()
        own_redis.wait()
        response = requests.get(live_server.url + "/healthz", timeout=10)
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "error" and body["checks"]["redis"]["ok"] is False
        assert body["checks"]["database"]["ok"] is True
    finally:
        if own_redis.poll() is None:
            own_redis.kill()


def test_metrics_need_the_token(live_server):
    assert requests.get(live_server.url + "/metrics", timeout=10).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert requests.get(live_server.url + "/metrics", headers=wrong, timeout=10).status_code == 401


def test_metrics_expose_queues_jobs_generation_time_and_workers(api, account, live_server):
    waiting = jobs.submit(
        user=account[0], params=_params(), base_url=api.base_url, queue_name="low.a-checkpoint-nobody-holds"
    )
    assert (
        api.post("/api/v3/text2img", {"prompt": "x", "width": 64, "height": 64, "num_inference_steps": 1})["status"]
        == "success"
    )
    api.post("/api/v3/system_load")
    response = requests.get(live_server.url + "/metrics", headers=TOKEN, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    for queue in ("high", "default", "low"):
        assert f'sdxl_queue_depth{{queue="{queue}"}}' in text
    assert 'sdxl_queue_depth{queue="low.a-checkpoint-nobody-holds"} 1.0' in text  # per-checkpoint queues too
    assert waiting.status == "queued"
    assert 'sdxl_jobs{status="success"}' in text
    assert 'sdxl_api_requests_total{endpoint="text2img",status="success"}' in text
    assert 'sdxl_api_requests_total{endpoint="systemload",status="ok"}' in text
    assert 'sdxl_generation_seconds_bucket{kind="text2img",le="+Inf"}' in text
    assert 'sdxl_generation_seconds_count{kind="text2img"}' in text
    workers = next(line for line in text.splitlines() if line.startswith("sdxl_workers "))
    assert float(workers.split()[1]) >= 1
