"""POST /api/v3/system_load counts queued jobs; integers, not floats."""

from generation.lifecycle import jobs
from tests.test_fetch import _params


def test_counts_queued_jobs(api, account):
    user, _ = account
    before = api.post("/api/v3/system_load")
    assert before == {"queue_num": 0, "queue_time": 0, "status": "ok", "models": {}}

    big = _params(width=1024, height=1024, steps=50)  # seconds each, even scaled from tiny jobs
    for _ in range(3):
        jobs.submit(user=user, api_key=None, params=big, base_url=api.base_url, queue_name="parked")
    after = api.post("/api/v3/system_load")
    assert after["status"] == "ok"
    assert after["queue_num"] == 3 and [m["queue_num"] for m in after["models"].values()] == [3]
    assert isinstance(after["queue_time"], int) and after["queue_time"] > 0
    jobs.submit(user=user, api_key=None, params=big, base_url=api.base_url, queue_name="parked")
    more = api.post("/api/v3/system_load")
    assert more["queue_num"] == 4 and more["queue_time"] >= after["queue_time"]
