"""The long chaos run, by hand:

    python -m tests.chaos.run --seed 42 --duration 600 --jobs 50000 --workers 4

Prints progress every 10 s and the report; exits 0 when every check passed, 1 if not
(the run's folder, with every worker's log, is then kept and named).
"""

from __future__ import annotations

import argparse
import json
import sys

from tests.chaos.harness import FAULT_KINDS, ChaosRun


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tests.chaos.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of faults and load")
    ap.add_argument("--jobs", type=int, default=50000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--lock-ms", type=int, default=2000)
    ap.add_argument("--stalled-interval-ms", type=int, default=500)
    ap.add_argument("--max-stalls", type=int, default=2)
    ap.add_argument("--faults-per-kind", type=int, default=None,
                    help="default: max(8, duration / 30)")
    ap.add_argument("--kinds", default=",".join(FAULT_KINDS),
                    help=f"comma-separated subset of {','.join(FAULT_KINDS)}")
    ap.add_argument("--keep", action="store_true", help="keep the run's folder even when it passes")
    ap.add_argument("--progress", type=float, default=10.0, help="seconds between progress lines")
    ap.add_argument("--json", action="store_true", help="also print the report as JSON")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run = ChaosRun(args.seed, args.duration, args.jobs, args.workers, concurrency=args.concurrency,
                   lock_ms=args.lock_ms, stalled_interval_ms=args.stalled_interval_ms,
                   max_stalls=args.max_stalls, faults_per_kind=args.faults_per_kind,
                   kinds=tuple(k for k in args.kinds.split(",") if k), keep=args.keep,
                   progress_s=args.progress)
    report = run.run()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
