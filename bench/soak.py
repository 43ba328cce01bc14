"""`make soak`: ten minutes of mixed load with 30% of AWS calls failing and a SIGKILL every minute.

Not part of CI (the suite runs a one-minute version: tests/hardening/test_soak.py). The checks are those of
tests/soak_support.py; the figures are appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))

from aws_support import MotoServer  # noqa: E402
from soak_support import Soak  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--kill-every", type=float, default=60)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md")
    args = parser.parse_args(argv)
    started = datetime.datetime.now().astimezone()
    with tempfile.TemporaryDirectory(prefix="coffer-soak-") as tmp:
        work = Path(tmp)
        moto = MotoServer(log_dir=work).start()
        try:
            (work / "server").mkdir()
            result = Soak(work / "server", moto, seconds=args.seconds, kill_every=args.kill_every,
                          fault_rate=args.fault_rate).run()
        finally:
            moto.stop()
    verdict = "PASS" if not result.findings else f"FAIL ({len(result.findings)} findings)"
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(result.statuses.items(), key=lambda kv: str(kv[0])))
    lines = [
        f"## {started:%Y-%m-%d %H:%M %Z}: soak, {result.seconds:.0f} s, {verdict}", "",
        f"Mixed load (2 KV writers, 2 AWS issue/revoke workers, 1 token create/revoke worker) on SQLite; "
        f"{args.fault_rate:.0%} of AWS calls failed by the proxy (throttling, 500, dropped, answered-then-dropped, "
        f"5 s stalls); SIGKILL + restart + unseal every {args.kill_every:.0f} s.", "",
        "| figure | value |", "|---|---|",
        f"| kills | {result.kills} |",
        f"| KV writes acknowledged, all read back | {result.kv_acknowledged} |",
        f"| AWS leases issued / revoked by clients | {result.leases_issued} / {result.leases_revoked} |",
        f"| tokens created and revoked | {result.tokens} |",
        f"| AWS calls seen by the proxy / failed | {result.aws_calls} / {result.aws_faults} |",
        f"| answers by status | {statuses} |",
        f"| RSS before each kill (MB) | {', '.join(f'{m:.0f}' for m in result.rss_mb)} |",
        f"| RSS growth (MB, limit 100) | {result.rss_growth_mb:.0f} |",
        "",
    ]
    lines += [f"- finding: {f}" for f in result.findings[:50]] + [""]
    print("\n".join(lines))
    with open(args.results, "a") as f:
        f.write("\n".join(lines) + "\n")
    return 0 if not result.findings else 1


if __name__ == "__main__":
    sys.exit(main())
