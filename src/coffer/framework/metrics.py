"""Metrics an engine may record, and the cheap counters and histograms core's metrics are made of.

Engines cannot import core, so what they measure goes into this module's
registry (``ENGINE_METRICS``), which core exports with its own at
``sys/metrics``. An engine calls, for instance::

    from coffer.framework import metrics
    metrics.aws_call("iam", "CreateUser", "ok", 0.18)

Series are plain Python lists (core's are updated on the event loop's thread
only, without locks; the engines' ones under a lock), so recording one costs a
dict lookup and a couple of additions; prometheus-client turns them into metric
families only when somebody scrapes. Labels are meant for bounded values
(mount, role, action, outcome): never a secret, a token, a lease id or a
user name.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

#: Bucket bounds (seconds) for request and call latencies: 0.5 ms to 10 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_bisect = bisect.bisect_left
_monotonic = time.monotonic

#: Outcomes of a call to AWS.
OK, THROTTLED, ERROR = "ok", "throttled", "error"


class _Series:
    """One label set of a histogram: counts per bucket (the last one is +Inf), sum, min, max, sum of squares."""

    __slots__ = ("buckets", "sum", "squares", "min", "max", "first", "last")

    def __init__(self, size: int, now: float) -> None:
        self.buckets = [0] * (size + 1)
        self.sum = 0.0
        self.squares = 0.0
        self.min = math.inf
        self.max = 0.0
        self.first = now
        self.last = now

    @property
    def count(self) -> int:
        return sum(self.buckets)


class HistogramVec:
    """A histogram by label values, with its ``_count`` also exported as a ``<counter>_total`` counter."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str], *,
                 buckets: Sequence[float] = LATENCY_BUCKETS, counter: str = "", counter_doc: str = "") -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.bounds = tuple(sorted(buckets))
        self.counter = counter
        self.counter_doc = counter_doc or documentation
        self.series: dict[tuple[str, ...], _Series] = {}

    def observe(self, key: tuple[str, ...], seconds: float, now: float | None = None) -> None:
        """Record ``seconds`` for the label values ``key`` (in the order of ``labels``); ``now`` is a
        time.monotonic() reading (taken here when not given)."""
        if now is None:
            now = _monotonic()
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = _Series(len(self.bounds), now)
        series.buckets[_bisect(self.bounds, seconds)] += 1
        series.sum += seconds
        series.squares += seconds * seconds
        if seconds > series.max:
            series.max = seconds
        if seconds < series.min:
            series.min = seconds
        series.last = now

    def observe_many(self, observations: Iterable[tuple[tuple[str, ...], float]]) -> None:
        """:meth:`observe` for many (label values, seconds) at once (the same moment for all)."""
        now = _monotonic()
        series_of, bounds, size = self.series, self.bounds, len(self.bounds)
        touched = set()
        for key, seconds in observations:
            series = series_of.get(key)
            if series is None:
                series = series_of[key] = _Series(size, now)
            series.buckets[_bisect(bounds, seconds)] += 1
            series.sum += seconds
            series.squares += seconds * seconds
            if seconds > series.max:
                series.max = seconds
            if seconds < series.min:
                series.min = seconds
            touched.add(series)
        for series in touched:
            series.last = now

    def live(self, retention: float) -> Iterator[tuple[tuple[str, ...], _Series]]:
        """The series updated within ``retention`` seconds (all of them when it is 0); older ones are dropped."""
        if retention > 0:
            cutoff = time.monotonic() - retention
            for key in [k for k, s in self.series.items() if s.last < cutoff]:
                del self.series[key]
        return iter(list(self.series.items()))

    def collect(self, retention: float = 0) -> Iterator[Metric]:
        hist = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        total = CounterMetricFamily(self.counter, self.counter_doc, labels=self.labels) if self.counter else None
        for key, series in self.live(retention):
            running, cumulative = 0, []
            for bound, n in zip((*self.bounds, math.inf), series.buckets, strict=True):
                running += n
                cumulative.append((_bound_text(bound), running))
            hist.add_metric(list(key), cumulative, series.sum)
            if total is not None:
                total.add_metric(list(key), series.count)
        yield hist
        if total is not None:
            yield total


class CounterVec:
    """A monotonic counter by label values."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        # prometheus-client adds the ``_total`` suffix itself when it writes the text format.
        self.name = name[:-6] if name.endswith("_total") else name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.values: dict[tuple[str, ...], float] = {}
        self.updated: dict[tuple[str, ...], float] = {}

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        self.values[key] = self.values.get(key, 0.0) + amount
        self.updated[key] = time.monotonic()

    def value(self, key: tuple[str, ...]) -> float:
        return self.values.get(key, 0.0)

    def collect(self, retention: float = 0) -> Iterator[Metric]:
        if retention > 0:
            cutoff = time.monotonic() - retention
            for key in [k for k, t in self.updated.items() if t < cutoff]:
                self.values.pop(key, None)
                self.updated.pop(key, None)
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, value in list(self.values.items()):
            family.add_metric(list(key), value)
        yield family


def _bound_text(bound: float) -> str:
    return floatToGoString(bound)


class EngineMetrics:
    """What engines record: their calls to AWS (by service, action and outcome) and how long those took.

    The SDK reports calls from its worker threads, so these series are updated and read under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.aws_calls = HistogramVec(
            "coffer_aws_call_duration_seconds", "How long calls to AWS took, by service, action and outcome.",
            ("service", "action", "outcome"), counter="coffer_aws_calls",
            counter_doc="Calls to AWS, by service, action and outcome (ok, throttled, error).")

    def collect(self, retention: float = 0) -> Iterable[Metric]:
        with self.lock:
            families = list(self.aws_calls.collect(retention))
        yield from families


#: The registry of this process's engines; core's metrics export it.
ENGINE_METRICS = EngineMetrics()


def aws_call(service: str, action: str, outcome: str, seconds: float) -> None:
    """Record one call to AWS: ``service`` ("iam", "sts"), ``action`` ("CreateUser"), ``outcome`` (OK,
    THROTTLED or ERROR) and its duration in seconds. Any thread may call it."""
    with ENGINE_METRICS.lock:
        ENGINE_METRICS.aws_calls.observe((service, action, outcome), seconds)
