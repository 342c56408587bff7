"""Where the web tier's CPU goes while requests wait for their jobs: py-spy samples the web process and the
worker during sequential waiting text2img requests (demo model, 64x64, 1 step), and this prints each
process's CPU time and the functions that used it most (self time, and time under our own modules).

    .venv/bin/pip install py-spy    # a profiler, not a dependency of the project
    .venv/bin/python bench/profile_web.py [--requests 300] [--server asgi|wsgi]
"""

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import common


def cpu_seconds(pid: int) -> float:
    stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def summarize(raw_path: str, label: str, top: int = 14):
    """py-spy's raw (collapsed) stacks: the functions with the most samples at the top of the stack, and
    the project's outermost functions by the samples under them."""
    own, under, total = collections.Counter(), collections.Counter(), 0
    for line in open(raw_path):
        stack, _, count = line.rstrip().rpartition(" ")
        frames = stack.split(";")
        total += int(count)
        own[frames[-1].split(" (")[0] + " " + frames[-1].split("/")[-1].rstrip(")")] += int(count)
        ours = [frame for frame in frames if "/work/" in frame and "/.venv/" not in frame or "main/generation" in frame]
        under[ours[0].split(" (")[0] + " " + ours[0].split("/")[-1].rstrip(")") if ours else "(no project frame)"] += (
            int(count)
        )
    print(f"\n{label}: {total} samples of the thread holding the GIL")
    for frame, count in own.most_common(top):
        print(f"  {100 * count / max(total, 1):5.1f}%  {frame[:110]}")
    print("  by the project's outermost function on the stack:")
    for frame, count in under.most_common(8):
        print(f"  {100 * count / max(total, 1):5.1f}%  {frame[:110]}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--server", default="asgi")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    key = common.setup()
    web = common.start_web(args.port, workers=1, server=args.server)
    worker = common.start_worker()
    conn = common.connect(args.port, key)
    body = {"key": key, **common.TINY}
    for _ in range(20):
        assert common.post(conn, "/api/v3/text2img", body)["status"] == "success"
    (web_pid,) = common.children(web.pid)
    outputs = {name: tempfile.mktemp(suffix=f"-{name}.txt") for name in ("web", "worker")}
    spies = [
        subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--format", "raw", "--output", outputs[name], "--rate", "200", "--gil"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in (("web", web_pid), ("worker", worker.pid))
    ]
    time.sleep(1)
    cpu_before = {name: cpu_seconds(pid) for name, pid in (("web", web_pid), ("worker", worker.pid))}
    started = time.perf_counter()
    for _ in range(args.requests):
        assert common.post(conn, "/api/v3/text2img", body)["status"] == "success"
    elapsed = time.perf_counter() - started
    cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in (("web", web_pid), ("worker", worker.pid))}
    for process in spies:
        process.send_signal(signal.SIGINT)
        process.wait()
    common.stop(web, worker)
    print(f"\n{args.requests} waiting text2img requests in {elapsed:.1f} s ({args.server} web tier, 1 process)")
    for name in ("web", "worker"):
        print(f"{name} process CPU: {cpu[name]:.2f} s, {1000 * cpu[name] / args.requests:.1f} ms per request")
    for name, path in outputs.items():
        summarize(path, name)


if __name__ == "__main__":
    main()
