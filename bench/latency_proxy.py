"""A reverse proxy in front of moto that makes every AWS call take ``--delay-ms`` longer.

moto answers an IAM call in a few ms of pure CPU; real IAM takes ~50-150 ms,
mostly waiting on the network. This proxy (the test suite's FaultProxy, run
in its own process so it shares no GIL with either side) forwards each
request to moto unchanged, then holds the answer for the delay. Both coffer
and the direct boto3 baseline talk to it, so the two sides pay the same delay.

It prints ``PORT <n>`` when listening; with ``--log`` it appends each
forwarded AWS action (one per line) to that file, so the benchmark can check
that the direct baseline makes the same calls coffer made.

    python bench/latency_proxy.py --target http://127.0.0.1:5000 --delay-ms 50
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from aws_support import FaultProxy  # noqa: E402


class LatencyProxy(FaultProxy):
    """FaultProxy whose every answer is held ``delay`` seconds; actions optionally logged."""

    def __init__(self, target: str, delay: float, log: Path | None) -> None:
        super().__init__(target, upstream_timeout=60.0)
        self.delay = delay
        self._log = open(log, "a", buffering=1) if log else None  # noqa: SIM115 - closed at exit
        if delay > 0:
            self.after("*", lambda: time.sleep(self.delay), times=None)

    def _record(self, action: str, status: int | None) -> None:
        # calls are not kept in memory (a long run makes hundreds of thousands)
        if self._log is not None:
            self._log.write(f"{action} {status}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument("--log", type=Path)
    args = parser.parse_args()
    proxy = LatencyProxy(args.target, args.delay_ms / 1000, args.log).start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"PORT {proxy.port}", flush=True)
    while not done.wait(3600):
        pass
    proxy.stop()


if __name__ == "__main__":
    main()
