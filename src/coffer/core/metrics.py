"""coffer's metrics, exported at ``sys/metrics`` (Vault's JSON form, or Prometheus' text format).

What is measured and where it comes from:

* requests: count and latency by mount type, operation and status class, recorded by http/ for every
  request (``observe_request``: a dict lookup and a few additions, on the event loop);
* leases: live and irrevocable by mount and role from the counters kept in storage with the leases
  (core/leasecounts.py: a scrape reads memory, never the leases); revoked, expired and failed revocations
  since start;
* AWS calls by service, action and outcome, and their latency (engines record them through
  coffer.framework.metrics);
* write-ahead entries pending per mount, tokens, seal state, audit device failures, barrier decryption
  failures, and the process itself (CPU, memory, file descriptors, garbage collection).

Counts that need storage (tokens, write-ahead entries) are refreshed before a scrape is rendered, tokens at
most every ``TOKEN_COUNT_EVERY`` seconds. Label values are mount paths, role names, actions, outcomes and
device paths: bounded, and never a secret, a token, a lease id or a user name.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from coffer import __version__
from coffer.core.tokens import ID as TOKEN_IDS
from coffer.framework import metrics as engine_metrics
from coffer.framework.metrics import HistogramVec
from coffer.framework.request import Response
from coffer.framework.wal import WAL_PREFIX
from coffer.storage.base import prefix_end

if TYPE_CHECKING:
    from coffer.core.core import Core

PROMETHEUS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
#: Vault's default for prometheus_retention_time when a telemetry block leaves it out.
DEFAULT_RETENTION = 24 * 3600
TOKEN_COUNT_EVERY = 30.0
#: Requests recorded before they are folded into the histogram (and always before a scrape).
FLUSH_AT = 2048

#: Status code // 100 -> the status class label.
STATUS_CLASSES = ("1xx", "1xx", "2xx", "3xx", "4xx", "5xx")


class Metrics:
    """One server's metrics (the engines' ones are shared by the process: coffer.framework.metrics)."""

    def __init__(self, core: Core, *, prometheus_retention: int = 0) -> None:
        self.core = core
        #: Seconds a label set is kept without updates (Vault's prometheus_retention_time); 0: Prometheus'
        #: format is off (as in Vault without a telemetry block), and label sets are kept forever.
        self.prometheus_retention = prometheus_retention
        self.requests = HistogramVec(
            "coffer_http_request_duration_seconds",
            "How long requests took to answer, by mount type, operation and status class.",
            ("mount_type", "operation", "status"), counter="coffer_http_requests",
            counter_doc="Requests answered, by mount type, operation and status class.")
        #: Requests answered since the last flush: (mount type, operation, status, seconds). http/ appends one
        #: tuple per request (the cheapest record there is); they are folded into the histogram in batches.
        self.pending: list[tuple[str, str, int, float]] = []
        #: The active node's role when HA is on: a callable answering "active", "standby" or "" (no HA).
        self.ha_role: Callable[[], str] = lambda: ""
        self.started = time.time()
        self._tokens: tuple[float, int | None] = (0.0, None)
        self._wal: dict[str, int] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    # -- recording (hot path) ---------------------------------------------------

    def observe_request(self, mount_type: str, operation: str, status: int, seconds: float) -> None:
        """One answered request (``status`` 100 to 599). http/ appends to ``pending`` itself, then calls
        :meth:`flush` once ``FLUSH_AT`` are waiting."""
        self.pending.append((mount_type, operation, status, seconds))
        if len(self.pending) >= FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Fold the pending requests into the request histogram (in place: http/ holds the list)."""
        batch = self.pending[:]
        self.pending.clear()
        self.requests.observe_many(
            [((mount_type or "none", operation, STATUS_CLASSES[status // 100]), seconds)
             for mount_type, operation, status, seconds in batch])

    # -- what needs storage -------------------------------------------------------

    async def refresh(self) -> None:
        """Read what the scrape shows from storage: write-ahead entries per mount, tokens (cached)."""
        core = self.core
        if core.sealed:
            return
        wal: dict[str, int] = {}
        for mount in list(core.router.mounts.values()):
            n = await mount.storage.count(WAL_PREFIX)
            if n or mount.info.type not in ("system", "token", "cubbyhole"):
                wal[mount.info.path] = n
        self._wal = wal
        when, _ = self._tokens
        if time.monotonic() - when >= TOKEN_COUNT_EVERY or self._tokens[1] is None:
            count = await core.barrier.count(TOKEN_IDS, prefix_end(TOKEN_IDS))
            self._tokens = (time.monotonic(), count)

    # -- rendering ------------------------------------------------------------------

    async def prometheus(self) -> bytes:
        await self.refresh()
        return generate_latest(self.registry)

    async def json(self) -> dict[str, Any]:
        """Vault's JSON form (go-metrics' in-memory sink): Gauges, Counters and Samples."""
        await self.refresh()
        self.flush()
        gauges: list[dict[str, Any]] = []
        counters: list[dict[str, Any]] = []
        samples: list[dict[str, Any]] = []
        elapsed = max(time.time() - self.started, 1e-9)
        for family in self.registry.collect():
            for sample in family.samples:
                if family.type == "counter" and sample.name.endswith("_total"):  # not the _created samples
                    counters.append(_aggregate(sample.name, dict(sample.labels), sample.value, sample.value,
                                               sample.value, sample.value, 0.0, elapsed))
                elif family.type in ("gauge", "unknown", "info"):
                    gauges.append({"Name": sample.name, "Value": sample.value, "Labels": dict(sample.labels)})
        # Histograms come from their series, which also know min, max and spread.
        engines = engine_metrics.ENGINE_METRICS
        with engines.lock:
            aws = list(engines.aws_calls.live(self.prometheus_retention))
        for vec, live in ((self.requests, list(self.requests.live(self.prometheus_retention))),
                          (engines.aws_calls, aws)):
            for key, series in live:
                spread = max(series.squares / series.count - (series.sum / series.count) ** 2, 0.0)
                samples.append(_aggregate(vec.name, dict(zip(vec.labels, key, strict=True)), series.count,
                                          series.sum, series.min, series.max, math.sqrt(spread), elapsed))
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC")
        return {"Timestamp": stamp, "Gauges": gauges, "Points": [], "Counters": counters, "Samples": samples}


async def metrics_response(metrics: Metrics, fmt: str) -> Response:
    """``GET sys/metrics[?format=prometheus]``: Vault's JSON form by default, Prometheus' text format when
    asked (and enabled by the configuration's telemetry block); other formats are a plain-text 400."""
    if not fmt:
        return Response(raw=True, data=await metrics.json())
    if fmt == "prometheus":
        if not metrics.prometheus_retention:
            return Response(status=400, body=b"prometheus is not enabled (set telemetry { prometheus_retention_time "
                            b'= "24h" } in the server configuration)', content_type="text/plain; charset=utf-8")
        return Response(body=await metrics.prometheus(), content_type=PROMETHEUS_CONTENT_TYPE)
    return Response(status=400, body=f'metric response format "{fmt[:40]}" unknown (use "prometheus", or no '
                    'format for JSON)'.encode(), content_type="text/plain; charset=utf-8")


def _aggregate(name: str, labels: dict[str, str], count: float, total: float, low: float, high: float,
               stddev: float, elapsed: float) -> dict[str, Any]:
    return {"Name": name, "Count": count, "Rate": total / elapsed, "Sum": total,
            "Min": 0.0 if low == math.inf else low, "Max": high, "Mean": total / count if count else 0.0,
            "Stddev": stddev, "Labels": labels}


class _Collector:
    """Everything of coffer's own, as prometheus-client families (read from memory only)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self.metrics
        core = m.core
        retention = m.prometheus_retention
        info = GaugeMetricFamily("coffer_build_info", "The running coffer's version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield GaugeMetricFamily("coffer_core_unsealed", "1 while the server is unsealed and serving, else 0.",
                                value=0 if core.sealed else 1)
        role = m.ha_role()
        if role:
            ha = GaugeMetricFamily("coffer_ha_active", "1 on the active node, 0 on a standby.", labels=["role"])
            ha.add_metric([role], 1 if role == "active" else 0)
            yield ha
        m.flush()
        yield from m.requests.collect(retention)
        yield from engine_metrics.ENGINE_METRICS.collect(retention)
        expiration = core.expiration
        for vec in (expiration.revoked, expiration.expired, expiration.failed):
            yield from vec.collect(retention)
        if not core.sealed:
            yield from self._leases()
            tokens = m._tokens[1]
            if tokens is not None:
                yield GaugeMetricFamily("coffer_tokens", "Tokens in the token store (service tokens, including "
                                        "wrapping tokens).", value=tokens)
            wal = GaugeMetricFamily("coffer_wal_entries_pending", "Write-ahead entries not yet resolved, by mount "
                                    "(something an unfinished request began outside coffer).", labels=["mount"])
            for mount, n in sorted(m._wal.items()):
                wal.add_metric([mount], n)
            yield wal
        audit = core.audit
        failures = CounterMetricFamily("coffer_audit_device_failures", "Entries an audit device failed to record, "
                                       "by device path.", labels=["device"])
        for device, n in sorted(audit.failures.items()):
            failures.add_metric([device], n)
        yield failures
        yield CounterMetricFamily("coffer_audit_unrecorded", "Audit entries no device recorded (the request was "
                                  "refused, or the response withheld).", value=audit.unrecorded)
        yield CounterMetricFamily("coffer_barrier_decrypt_failures", "Stored values that failed to decrypt "
                                  "(damaged storage, or changed outside coffer).",
                                  value=core.barrier.decrypt_failures)

    def _leases(self) -> Iterator[Metric]:
        expiration = self.metrics.core.expiration
        counts = expiration.counts
        live = GaugeMetricFamily("coffer_leases_live", "Leases not yet revoked, by mount and role.",
                                 labels=["mount", "role"])
        irrevocable = GaugeMetricFamily("coffer_leases_irrevocable", "Leases whose revocation kept failing past "
                                        "the retry window (sys/leases?type=irrevocable), by mount and role.",
                                        labels=["mount", "role"])
        for family, table in ((live, counts.live), (irrevocable, counts.irrevocable)):
            by_label: dict[tuple[str, str], int] = {}
            for (mount_uuid, role), n in list(table.items()):
                mount = expiration.mount_label(mount_uuid)
                if not mount and not n:
                    continue  # an unmounted mount's zeros
                key = (mount or "(unmounted)", role)
                by_label[key] = by_label.get(key, 0) + n
            for (mount, role), n in sorted(by_label.items()):
                family.add_metric([mount, role], n)
        yield live
        yield irrevocable


__all__ = ["DEFAULT_RETENTION", "Metrics", "PROMETHEUS_CONTENT_TYPE", "STATUS_CLASSES"]
