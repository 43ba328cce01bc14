"""py-spy profiles of a running server, summarised as text for RESULTS.md.

``record(pid, seconds)`` samples the process (py-spy record --format raw,
i.e. collapsed stacks, GIL-less idle time excluded) while the caller drives
load; ``summarise`` answers the functions with the largest inclusive and
self share of the samples.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
from pathlib import Path

from common import PROCS, _die_with_parent, stop


def py_spy() -> str | None:
    exe = Path(sys.executable).parent / "py-spy"
    return str(exe) if exe.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, out: Path, rate: int = 200, native: bool = False) -> subprocess.Popen | None:
    exe = py_spy()
    if exe is None:
        return None
    extra = ["--native", "--idle"] if native else ["--nonblocking"]  # --native must pause the process
    proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(rate),
                             *extra, "--format", "raw", "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    PROCS.append(proc)
    return proc


def finish(proc: subprocess.Popen | None, timeout: float = 60) -> None:
    if proc is None:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    stop(proc)


def _frame_name(frame: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:line)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{name} ({file})"


def summarise(path: Path, top: int = 25) -> str:
    if not path.exists() or path.stat().st_size == 0:
        return "(no profile: py-spy missing or not permitted)"
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    if not total:
        return "(empty profile)"
    lines = [f"py-spy, {total} samples (only samples where a Python thread was running)", "",
             "inclusive %  function", "-----------  --------"]
    lines += [f"{100 * n / total:10.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "self %       function", "-----------  --------"]
    lines += [f"{100 * n / total:10.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)
