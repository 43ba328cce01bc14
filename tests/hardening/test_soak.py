"""A minute of the soak (tests/soak_support.py) in the suite: mixed load, 30% of AWS calls failing, a SIGKILL
every 20 s; `make soak` runs the ten-minute version and records its figures in bench/RESULTS.md."""

from __future__ import annotations

from soak_support import Soak


def test_a_minute_of_mixed_load_with_failing_aws_and_kills(tmp_path, moto):
    result = Soak(tmp_path, moto, seconds=60, kill_every=20).run()
    assert result.kills >= 2
    assert result.kv_acknowledged > 0 and result.leases_issued > 0 and result.tokens > 0
    assert result.aws_faults > 0  # the proxy did fail calls
    assert 500 not in result.statuses, result.findings
    assert result.findings == [], result.findings
