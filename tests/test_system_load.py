"""POST /api/v3/system_load counts queued jobs; integers, not floats."""

from generation import jobs
from tests.test_fetch import _params


def test_counts_queued_jobs(api, account):
    user, _ = account
    before = api.post("/api/v3/system_load")
    assert before == {"queue_num": 0, "queue_time": 0, "status": "ok"}

    for _ in range(3):
        jobs.submit(user=user, api_key=None, kind="text2img", params=_params(), base_url=api.base_url,
                    queue_name="parked")
    after = api.post("/api/v3/system_load")
    assert after["status"] == "ok"
    assert after["queue_num"] == 3
    assert isinstance(after["queue_time"], int) and after["queue_time"] > 0
