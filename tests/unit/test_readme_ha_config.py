"""The README's high-availability example is a configuration coffer accepts: the HCL block of its
"High availability" section goes through coffer's own config loader and PostgreSQL option parsing, and says
what the section claims (a PostgreSQL storage with HA on, each node's api_addr and cluster_addr)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coffer.config import ServerConfig, parse_config
from coffer.server import ha_addresses
from coffer.storage.postgresql.options import HATimings, storage_arguments

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def ha_section() -> str:
    """The README's "## High availability ..." section, up to the next second-level heading."""
    start = re.search(r"(?m)^## High availability\b.*$", README)
    assert start is not None, "README has no '## High availability' section"
    following = re.search(r"(?m)^## ", README[start.end():])
    return README[start.end(): start.end() + following.start()] if following else README[start.end():]


def hcl_blocks(text: str) -> list[str]:
    return re.findall(r"(?ms)^```hcl\n(.*?)^```", text)


def node_config(block: str, node: int) -> ServerConfig:
    """The example as node ``node`` would have it: the block is node1's, the others change only the names."""
    return parse_config(block.replace("node1", f"node{node}"), source=f"README node{node}.hcl")


def test_the_ha_section_has_one_three_node_example() -> None:
    blocks = hcl_blocks(ha_section())
    assert len(blocks) == 1, blocks
    assert "node2 and node3 differ only in api_addr / address" in blocks[0]


@pytest.mark.parametrize("node", [1, 2, 3])
def test_the_ha_example_loads_with_the_config_parser(node: int) -> None:
    config = node_config(hcl_blocks(ha_section())[0], node)
    assert config.storage.type == "postgresql"
    assert config.storage.options["ha_enabled"] == "true"
    assert config.storage.options["connection_url"].startswith("postgresql://")
    assert config.api_addr == f"https://node{node}.example.com:8200"
    assert config.cluster_addr == f"https://node{node}.example.com:8201"
    assert config.listener.address == "0.0.0.0:8200" and not config.listener.tls_disable
    assert config.listener.tls_cert_file and config.listener.tls_key_file
    assert not config.warnings, config.warnings
    # What the server does with it: the PostgreSQL backend's options parse with HA on, and the addresses the
    # node advertises are the configured ones (a 0.0.0.0 listener alone would be refused).
    url, kwargs = storage_arguments(config.storage.options, {})
    assert url == config.storage.options["connection_url"]
    assert kwargs["ha_enabled"] is True
    assert ha_addresses(config) == (f"https://node{node}.example.com:8200", f"https://node{node}.example.com:8201")


def test_the_lock_timings_the_section_states_are_the_defaults() -> None:
    section = ha_section()
    timings = HATimings()
    assert f"renewed every {timings.renew_interval:g} s with a {timings.ttl:g} s TTL" in section
