"""The web tier's memory under large input images: one web process (as `make run` serves it) takes 8
concurrent inpaint requests, each with a 4096x4096 init image and a 4096x4096 mask (PNGs of a few tens
of KB: cheap to send, 16.7 megapixels each to decode). Prints the web process's RSS before, at its peak
and after, and how long the requests took. (No worker runs: the jobs stay queued; the web tier is measured.)

    .venv/bin/python bench/web_memory.py [--requests 8] [--rounds 3]
"""

import argparse
import base64
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import common
from PIL import Image, ImageDraw

PORT = 8793


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def big_png(color) -> str:
    image = Image.new("RGB", (4096, 4096), color)
    ImageDraw.Draw(image).ellipse((1000, 1000, 3000, 3000), fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    key = common.setup()
    web = common.start_web(PORT, workers=1)
    try:
        common.connect(PORT, key)
        (pid,) = common.children(web.pid)
        init, mask = big_png((40, 90, 160)), big_png((0, 0, 0))
        body = {"key": key, "prompt": "a lake", "init_image": init, "mask_image": mask, "instant_response": True}
        print(f"each request: {len(init) * 2 / 1024:.0f} KB of base64 for two 4096x4096 images")
        small = {**body, "init_image": _small(), "mask_image": _small()}
        common.post(common.connect(PORT, key), "/api/v6/images/inpaint", small)  # warm: every module imported
        baseline = rss_mib(pid)
        peak, stop = [baseline], threading.Event()

        def sample():
            while not stop.is_set():
                peak.append(rss_mib(pid))
                time.sleep(0.02)

        threading.Thread(target=sample, daemon=True).start()
        seconds = []

        def one(_):
            started = time.perf_counter()
            answer = common.post(common.connect(PORT, key), "/api/v6/images/inpaint", body)
            seconds.append(time.perf_counter() - started)
            return answer["status"]

        statuses = []
        for _ in range(args.rounds):
            with ThreadPoolExecutor(args.requests) as pool:
                statuses += list(pool.map(one, range(args.requests)))
        stop.set()
        time.sleep(1)
        after = rss_mib(pid)
        seconds.sort()
        print(f"{args.rounds} rounds of {args.requests} concurrent requests: answers {sorted(set(statuses))}")
        print(f"web RSS: baseline {baseline:.0f} MiB, peak {max(peak):.0f} MiB (+{max(peak) - baseline:.0f}), ", end="")
        print(f"after {after:.0f} MiB (+{after - baseline:.0f})")
        print(f"request seconds: p50 {seconds[len(seconds) // 2]:.2f}, max {seconds[-1]:.2f}")
        common.drain()
    finally:
        common.stop(web)


def _small() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


if __name__ == "__main__":
    main()
