"""Load: mixed API traffic from many accounts, above what the worker can serve, for at least 60 s.
Then every accepted job must end, and every account's credits must balance exactly.

    .venv/bin/python bench/load.py [--seconds 60] [--threads 16] [--accounts 20]
"""

import argparse
import time

import common
import traffic


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--port", type=int, default=8770)
    args = parser.parse_args()

    cluster = traffic.Cluster(args.port)
    common.setup()
    accounts = traffic.make_accounts(args.accounts, credits_each=200, max_queued=4, per_minute=60)
    cluster.start()
    try:
        common.connect(args.port, accounts[0][1])
        load = traffic.Traffic(f"http://127.0.0.1:{args.port}", accounts, args.threads, args.seconds)
        started = time.monotonic()
        load.run()
        elapsed = time.monotonic() - started
        left = traffic.drain(timeout=600)
        checks = traffic.verify(load, credits_each=200)
    finally:
        cluster.stop()
    text = traffic.report(load, elapsed, checks, f"Load: {args.seconds:.0f} s, {args.threads} client threads")
    traffic.save(text + f"\n- still queued or running {600} s after the load stopped: {left}", "load")


if __name__ == "__main__":
    main()
