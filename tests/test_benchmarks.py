"""The GPU benchmark runs through on the CPU (the demo model, tiny sizes), so the one run a lent GPU
machine gets is not spent on a broken script: every setting's row, the worker through the API."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_gpu_benchmark_runs_through_on_the_demo_model(tmp_path):
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    out = tmp_path / "gpu.md"
    finished = subprocess.run(
        [sys.executable, "bench/gpu.py", "--smoke", "--compile", "", "--repeat", "1", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    lines = out.read_text().splitlines()
    assert not [line for line in lines if "failed" in line], lines
    table = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines if line.startswith("| ")]
    header, rows = table[0], table[2:]  # the second line is the table's rule
    assert [row[0] for row in rows] == [
        "fp16, classic attention (VAE in fp32)",
        "fp16 + SDPA (VAE decoded in fp32)",
        "bf16 + SDPA",
        "+ channels_last",
        "+ fused QKV: the worker's eager default",
    ]
    invalid = header.index("invalid images")
    assert all(row[invalid].startswith("0/") and "–" not in row for row in rows), rows
    worker = next(
        re.match(r"worker through the API: (\d+) jobs after the first, run in batches of \[([\d, ]*)\]", line)
        for line in lines
        if line.startswith("worker through the API")
    )
    assert worker and int(worker[1]) == sum(int(size) for size in worker[2].split(",")) > 0  # every job ran
