"""coffer's benchmarks: each one runs coffer and its baseline side by side and prints the ratio.

    python bench/run.py [--quick | --full] [--only kv|aws|leases] [--reps 3]

`make bench` runs the quick sizes (a few minutes), `make bench-full` the full
ones. Every run appends a dated block to bench/RESULTS.md (machine, the
table, the raw figures, and a py-spy profile of coffer for any KV target
missed). See bench/README.md for what each benchmark measures and how.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import BENCH_DIR, Row, log  # noqa: E402

BENCHMARKS = ("kv", "aws", "leases", "peers", "idle")


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = f"{int(Path('/proc/meminfo').read_text().split()[1]) / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    import granian

    wrk = common.WRK
    wrk_version = ""
    if wrk:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout + ""
        wrk_version = out.split("[")[0].strip()
    return {
        "cores": os.cpu_count(), "cpu": model, "memory": mem, "python": platform.python_version(),
        "os": platform.platform(), "granian": granian.__version__, "sqlite": sqlite3.sqlite_version,
        "load_generator": wrk_version or "bench/loadgen.py (wrk unavailable)",
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def table(rows: list[Row]) -> str:
    head = ["benchmark", "coffer", "baseline", "ratio", "target", "pass/fail"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(x.replace("|", "/") for x in (r.name, r.coffer, r.baseline, r.ratio, r.target,
                                                                         r.verdict)) + " |")
    return "\n".join(lines)


def plain_table(rows: list[Row]) -> str:
    head = ["benchmark", "coffer", "baseline", "ratio", "target", "pass/fail"]
    cells = [head] + [[r.name, r.coffer, r.baseline, r.ratio, r.target, r.verdict] for r in rows]
    widths = [min(60, max(len(c[i]) for c in cells)) for i in range(len(head))]
    out = []
    for n, c in enumerate(cells):
        out.append("  ".join(x.ljust(widths[i]) for i, x in enumerate(c)))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="coffer benchmarks (coffer vs a baseline, side by side)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="quick sizes (the default; `make bench`)")
    size.add_argument("--full", action="store_true", help="full sizes (`make bench-full`)")
    parser.add_argument("--only", choices=BENCHMARKS, action="append", help="run only this benchmark (repeatable)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every figure (>= 3)")
    parser.add_argument("--results", type=Path, default=BENCH_DIR / "RESULTS.md")
    parser.add_argument("--no-results", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile of a missed KV target")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (databases, logs)")
    parser.add_argument("--peers-data", type=Path, metavar="DIR",
                        help="peers: keep the prepared lease data here and reuse it in later runs of the same size")
    args = parser.parse_args(argv)
    quick = not args.full
    mode = "quick" if quick else "full"
    only = args.only or list(BENCHMARKS)

    def terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    common.ensure_wrk()
    info = machine()
    if "peers" in only:
        try:
            import peers

            info["openbao"] = peers.bao_version()
        except Exception as exc:  # noqa: BLE001 - the peers benchmark itself reports what is missing
            info["openbao"] = f"unavailable ({exc})"
    workdir = Path(tempfile.mkdtemp(prefix="coffer-bench-"))
    started = datetime.datetime.now().astimezone()
    t_start = time.monotonic()
    log(f"coffer benchmarks, {mode} sizes, {args.reps} repetitions: {', '.join(only)}; work dir {workdir}")
    log("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    profiles: dict[str, str] = {}
    timings: dict[str, float] = {}
    try:
        for name in only:
            t0 = time.monotonic()
            try:
                if name == "kv":
                    import kv_bench

                    got, raw[name] = kv_bench.run(workdir, quick=quick, reps=args.reps)
                    if not args.no_profile and any(r.passed is False for r in got):
                        for kind in ("read", "write"):
                            if any(r.passed is False and f"KV {kind}" in r.name for r in got):
                                log(f"kv: {kind} target missed: profiling coffer under that load (py-spy)")
                                profiles[f"KV {kind}"] = kv_bench.profile(workdir, kind)
                elif name == "peers":
                    import peers

                    got, raw[name] = peers.run(workdir, quick=quick, reps=args.reps, profile=not args.no_profile,
                                               data_dir=args.peers_data)
                    profiles.update({f"peers: {k}": v for k, v in raw[name].pop("profiles", {}).items()})
                elif name == "idle":
                    import idle_bench

                    got, raw[name] = idle_bench.run(workdir, quick=quick, reps=args.reps)
                elif name == "aws":
                    import aws_bench

                    got, raw[name] = aws_bench.run(workdir, quick=quick, reps=args.reps)
                else:
                    import leases_bench

                    got, raw[name] = leases_bench.run(workdir, quick=quick, reps=args.reps)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one benchmark failing must not lose the others' figures
                traceback.print_exc()
                got = [Row(f"{name}: benchmark failed", f"{type(exc).__name__}: {exc}"[:200], "-", "-", "-", False)]
                raw[name] = {"error": traceback.format_exc()}
            finally:
                common.stop_all()
            rows += got
            timings[name] = time.monotonic() - t0
            log(f"{name}: done in {timings[name]:.0f}s")
    finally:
        common.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.monotonic() - t_start
    print()
    print(plain_table(rows))
    failed = [r for r in rows if r.passed is False]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} rows pass or are informational; "
          f"{len(failed)} fail. Total {total:.0f}s.")
    if not args.no_results:
        block = [f"## {started:%Y-%m-%d %H:%M %Z}: {mode} run ({', '.join(only)}), {total:.0f} s", "",
                 "Machine: " + "; ".join(f"{k}: {v}" for k, v in info.items()) + ".",
                 f"Every figure: median (min, max) over {args.reps} repetitions unless the row says 1 run. "
                 "coffer and its baseline ran side by side, interleaved, in this one run."]
        if "aws" in only:
            block += ["AWS: moto (IAM auth enforced) behind bench/latency_proxy.py, which adds "
                      f"{getattr(sys.modules.get('aws_bench'), 'DELAY_MS', 50)} ms to EVERY AWS call of both coffer "
                      "and the direct boto3 baseline (real IAM answers in ~50-150 ms; moto in a few ms of CPU); "
                      "the no-delay rows talk to moto directly."]
        if "peers" in only:
            block += [f"Peers: the baseline is OpenBao ({info.get('openbao')}), same machine, same load generator: "
                      "in-memory rows coffer -dev vs bao -dev, durable rows coffer on SQLite vs bao on raft (one "
                      "node); ratios are coffer / OpenBao per repetition (min-max over repetitions)."]
        block += ["", table(rows), "",
                 "Time per benchmark: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ".", ""]
        for title, text in profiles.items():
            block += [f"<details><summary>py-spy profile of coffer: {title} (target missed)</summary>", "",
                      "```", text, "```", "</details>", ""]
        block += ["<details><summary>raw figures (JSON)</summary>", "", "```json",
                  json.dumps(raw, indent=1, default=str)[:60000], "```", "</details>", "", ""]
        new = not args.results.exists()
        with open(args.results, "a") as f:
            if new:
                f.write("# Benchmark results\n\nAppended by `bench/run.py` (`make bench`, `make bench-full`); "
                        "newest last. See bench/README.md for what each row measures.\n\n")
            f.write("\n".join(block))
        log(f"appended this run to {args.results}")
    # Targets are reported, not asserted: the exit status says whether every benchmark ran.
    return 1 if any(r.name.endswith("benchmark failed") for r in rows) else 0


def cli(argv: list[str] | None = None) -> int:
    try:
        return main(argv)
    except KeyboardInterrupt:
        common.stop_all()
        print("interrupted; every process started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(cli())
