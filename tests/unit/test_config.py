from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from coffer.config import (
    DEFAULT_LEASE_TTL,
    ConfigError,
    ListenerConfig,
    ServerConfig,
    StorageConfig,
    load_config,
    parse_address,
    parse_config,
)

PLAIN_LISTENER = 'listener "tcp" {\n  tls_disable = true\n}\n'
INMEM = 'storage "inmem" {}\n'


def hcl(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def parse(text: str) -> ServerConfig:
    return parse_config(hcl(text), source="config.hcl")


def config_error(text: str, source: str = "config.hcl") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(hcl(text), source=source)
    return info.value


# --------------------------------------------------------------------------
# The happy path


FULL_HCL = """
    # A production-like file.
    storage "sqlite" {
      path = "/var/lib/coffer/coffer.db"
    }

    listener "tcp" {
      address         = "0.0.0.0:8443"
      tls_cert_file   = "/etc/coffer/tls.crt"
      tls_key_file    = "/etc/coffer/tls.key"
      tls_min_version = "tls13"
    }

    default_lease_ttl = "1h"
    max_lease_ttl     = "24h"
    api_addr          = "https://coffer.example.com:8443"
    cluster_addr      = "https://10.0.0.5:8201"
    ui                = true
    log_level         = "debug"
    disable_mlock     = false
    """


def test_full_hcl_file() -> None:
    config = parse(FULL_HCL)
    assert config == ServerConfig(
        storage=StorageConfig(type="sqlite", options={"path": "/var/lib/coffer/coffer.db"}),
        listener=ListenerConfig(
            address="0.0.0.0:8443",
            tls_disable=False,
            tls_cert_file="/etc/coffer/tls.crt",
            tls_key_file="/etc/coffer/tls.key",
            tls_min_version="tls13",
        ),
        default_lease_ttl=3600,
        max_lease_ttl=86400,
        api_addr="https://coffer.example.com:8443",
        cluster_addr="https://10.0.0.5:8201",
        ui=True,
        log_level="debug",
        disable_mlock=False,
        warnings=[],
    )


def test_the_same_file_as_json() -> None:
    document = {
        "storage": {"sqlite": {"path": "/var/lib/coffer/coffer.db"}},
        "listener": {
            "tcp": {
                "address": "0.0.0.0:8443",
                "tls_cert_file": "/etc/coffer/tls.crt",
                "tls_key_file": "/etc/coffer/tls.key",
                "tls_min_version": "tls13",
            }
        },
        "default_lease_ttl": "1h",
        "max_lease_ttl": 86400,
        "api_addr": "https://coffer.example.com:8443",
        "cluster_addr": "https://10.0.0.5:8201",
        "ui": True,
        "log_level": "debug",
        "disable_mlock": False,
    }
    assert parse_config(json.dumps(document, indent=2), "config.json") == parse(FULL_HCL)


def test_json_listener_as_a_list_of_blocks() -> None:
    document = {
        "storage": {"inmem": {}},
        "listener": [{"tcp": {"address": "127.0.0.1:9200", "tls_disable": "true"}}],
    }
    config = parse_config("\n  " + json.dumps(document))
    assert config.listener == ListenerConfig(address="127.0.0.1:9200", tls_disable=True)
    assert config.warnings == []


def test_defaults() -> None:
    config = parse(INMEM + PLAIN_LISTENER)
    assert config.storage == StorageConfig(type="inmem", options={})
    assert config.listener == ListenerConfig(tls_disable=True)
    assert config.listener.address == "127.0.0.1:8200"
    assert config.listener.tls_min_version == "tls12"
    assert config.default_lease_ttl == config.max_lease_ttl == DEFAULT_LEASE_TTL == 768 * 3600
    assert config.api_addr is None and config.cluster_addr is None
    assert config.ui is False
    assert config.log_level == "info"
    assert config.disable_mlock is True
    assert config.warnings == []


def test_dataclass_defaults_match_the_brief() -> None:
    listener = ListenerConfig()
    assert (listener.address, listener.tls_disable, listener.tls_cert_file, listener.tls_key_file) == (
        "127.0.0.1:8200",
        False,
        None,
        None,
    )
    assert listener.tls_min_version == "tls12"
    config = ServerConfig(storage=StorageConfig("inmem"), listener=listener)
    assert config.warnings == [] and config.default_lease_ttl == 768 * 3600


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "coffer.hcl"
    path.write_text(hcl(FULL_HCL))
    assert load_config(str(path)) == parse(FULL_HCL)
    assert load_config(path).storage.type == "sqlite"  # PathLike works too


def test_load_config_tolerates_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "coffer.hcl"
    path.write_bytes(b"\xef\xbb\xbf" + (INMEM + PLAIN_LISTENER).encode())
    assert load_config(str(path)).storage.type == "inmem"


# --------------------------------------------------------------------------
# Storage


def test_backend_is_the_old_name_for_storage() -> None:
    config = parse('backend "sqlite" {\n  path = "/data/coffer.db"\n}\n' + PLAIN_LISTENER)
    assert config.storage == StorageConfig(type="sqlite", options={"path": "/data/coffer.db"})


def test_postgresql_type_is_accepted() -> None:
    config = parse(
        """
        storage "postgresql" {
          connection_url = "postgres://coffer@db/coffer"
          max_parallel   = 8
          ha_enabled     = false
        }
        """
        + PLAIN_LISTENER
    )
    assert config.storage.type == "postgresql"
    # Options are all strings, as in Vault.
    assert config.storage.options == {
        "connection_url": "postgres://coffer@db/coffer",
        "max_parallel": "8",
        "ha_enabled": "false",
    }


def test_missing_storage_block() -> None:
    err = config_error(PLAIN_LISTENER)
    message = str(err)
    assert message.startswith("config.hcl: ")
    assert "storage block is required" in message
    assert 'storage "sqlite"' in message  # an example to copy


def test_empty_file_needs_a_storage_block() -> None:
    assert "storage block is required" in str(config_error(""))
    assert "storage block is required" in str(config_error("   \n\n"))


def test_unsupported_storage_type_names_the_supported_ones() -> None:
    err = config_error('listener "tcp" { tls_disable = true }\nstorage "file" {\n  path = "/x"\n}\n')
    message = str(err)
    assert 'storage type "file" is not supported' in message
    for name in ("inmem", "sqlite", "postgresql"):
        assert f'"{name}"' in message
    assert err.line == 2


def test_sqlite_needs_a_path() -> None:
    err = config_error('storage "sqlite" {}\n' + PLAIN_LISTENER)
    assert 'needs a "path"' in str(err)
    assert err.line == 1


def test_sqlite_path_must_not_be_blank() -> None:
    assert 'needs a "path"' in str(config_error('storage "sqlite" { path = "" }\n' + PLAIN_LISTENER))


def test_only_one_storage_block() -> None:
    err = config_error('storage "inmem" {}\n' + PLAIN_LISTENER + 'storage "sqlite" { path = "a.db" }\n')
    assert 'only one "storage" block' in str(err)
    assert "lines 1, 5" in str(err)


def test_repeated_storage_block_of_the_same_type_is_caught() -> None:
    # pyhcl merges the two blocks; the error must not be lost.
    err = config_error('storage "sqlite" { path = "a.db" }\nstorage "sqlite" { path = "b.db" }\n' + PLAIN_LISTENER)
    assert 'only one "storage" block' in str(err)


def test_storage_and_backend_together() -> None:
    err = config_error('storage "inmem" {}\nbackend "inmem" {}\n' + PLAIN_LISTENER)
    assert '"storage" and "backend"' in str(err)


@pytest.mark.parametrize(
    "text",
    [
        'storage = "sqlite"\n',
        "storage = 3\n",
        "storage = [1, 2]\n",
        'storage {\n  path = "/x"\n}\n',
        'storage "sqlite" {\n  path = ["/a", "/b"]\n}\n',
        'storage "sqlite" {\n  path = "/a"\n  path = "/b"\n}\n',
    ],
)
def test_malformed_storage_is_a_config_error(text: str) -> None:
    err = config_error(text + PLAIN_LISTENER)
    assert str(err).startswith("config.hcl: line ")


# --------------------------------------------------------------------------
# Listener


def test_listener_with_tls() -> None:
    config = parse(
        INMEM
        + """
        listener "tcp" {
          tls_cert_file = "cert.pem"
          tls_key_file  = "key.pem"
        }
        """
    )
    assert config.listener == ListenerConfig(tls_cert_file="cert.pem", tls_key_file="key.pem")


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ("", "tls_cert_file and tls_key_file"),
        ('tls_cert_file = "cert.pem"', "tls_key_file"),
        ('tls_key_file = "key.pem"', "tls_cert_file"),
        ('tls_cert_file = ""\ntls_key_file = "key.pem"', "tls_cert_file"),
        ("tls_disable = false", "tls_cert_file and tls_key_file"),
    ],
)
def test_tls_needs_both_cert_and_key(body: str, missing: str) -> None:
    err = config_error(INMEM + 'listener "tcp" {\n' + body + "\n}\n")
    message = str(err)
    assert f"(missing {missing})" in message
    assert "tls_disable = true" in message  # says how to opt out
    assert err.line == 2


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("true", True),
        ("false", False),
        ('"true"', True),
        ('"false"', False),
        ('"1"', True),
        ('"0"', False),
        ("1", True),
        ("0", False),
        ('"TRUE"', True),
    ],
)
def test_tls_disable_spellings(written: str, expected: bool) -> None:
    tls = 'tls_cert_file = "c.pem"\ntls_key_file = "k.pem"\n'
    config = parse(INMEM + f'listener "tcp" {{\n{tls}tls_disable = {written}\n}}\n')
    assert config.listener.tls_disable is expected


@pytest.mark.parametrize("written", ['"yes"', "2", '"maybe"', '["true"]'])
def test_tls_disable_refuses_other_values(written: str) -> None:
    err = config_error(INMEM + f'listener "tcp" {{\n  tls_disable = {written}\n}}\n')
    assert "tls_disable must be true or false" in str(err)
    assert err.line == 3


def test_tls_files_with_tls_disabled_get_a_warning() -> None:
    config = parse(INMEM + 'listener "tcp" {\n tls_disable = 1\n tls_cert_file = "c.pem"\n}\n')
    assert config.listener.tls_disable is True
    assert len(config.warnings) == 1 and "not used because tls_disable" in config.warnings[0]


def test_only_tcp_listeners() -> None:
    err = config_error(INMEM + 'listener "unix" {\n  address = "/run/coffer.sock"\n}\n')
    assert 'listener type "unix" is not supported' in str(err)
    assert err.line == 2


def test_missing_listener_block() -> None:
    assert "listener block is required" in str(config_error(INMEM))


@pytest.mark.parametrize(
    "listener",
    [
        'listener = "tcp"\n',
        "listener = 8200\n",
        'listener = ["tcp"]\n',
        'listener {\n  address = "127.0.0.1:8200"\n}\n',
    ],
)
def test_listener_of_the_wrong_shape(listener: str) -> None:
    err = config_error(INMEM + listener)
    assert '"listener"' in str(err)
    assert err.line == 2


def test_listener_as_a_string_in_json() -> None:
    with pytest.raises(ConfigError, match='"listener" must be a block'):
        parse_config(json.dumps({"storage": {"inmem": {}}, "listener": "tcp"}), "c.json")


@pytest.mark.parametrize("address", ["0.0.0.0:8200", "[::]:8200", "[::1]:443", "localhost:1", ":8200"])
def test_listener_addresses(address: str) -> None:
    config = parse(INMEM + f'listener "tcp" {{\n address = "{address}"\n tls_disable = true\n}}\n')
    assert config.listener.address == address


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", "::1:8200"])
def test_listener_refuses_bad_addresses(address: str) -> None:
    err = config_error(INMEM + f'listener "tcp" {{\n tls_disable = true\n address = "{address}"\n}}\n')
    assert "must be host:port" in str(err)
    assert err.line == 4


def test_tls_min_version_is_checked() -> None:
    err = config_error(INMEM + 'listener "tcp" {\n tls_disable = true\n tls_min_version = "ssl3"\n}\n')
    assert "tls_min_version" in str(err) and "tls12" in str(err)


def test_several_listeners_use_the_first_and_warn() -> None:
    config = parse(
        INMEM
        + """
        listener "tcp" {
          address     = "127.0.0.1:8200"
          tls_disable = true
        }
        listener "tcp" {
          address       = "0.0.0.0:8201"
          tls_cert_file = "c.pem"
        }
        """
    )
    # pyhcl would merge the two blocks into one; the first must win untouched.
    assert config.listener == ListenerConfig(address="127.0.0.1:8200", tls_disable=True)
    assert len(config.warnings) == 1
    assert "found 2 listener blocks" in config.warnings[0]
    assert "lines 3, 7" in config.warnings[0]
    assert config.warnings[0].startswith("config.hcl: line 7: ")


def test_several_listeners_in_json() -> None:
    document = {
        "storage": {"inmem": {}},
        "listener": [{"tcp": {"tls_disable": True}}, {"tcp": {"address": "0.0.0.0:1"}}],
    }
    config = parse_config(json.dumps(document), "c.json")
    assert config.listener == ListenerConfig(tls_disable=True)
    (warning,) = config.warnings
    assert warning.startswith("c.json: found 2 listener blocks")


def test_client_certificate_requirement_is_refused() -> None:
    err = config_error(INMEM + 'listener "tcp" {\n tls_disable = true\n tls_require_and_verify_client_cert = true\n}\n')
    assert "tls_require_and_verify_client_cert" in str(err)
    assert err.line == 4


# --------------------------------------------------------------------------
# Warnings, not errors


def test_unknown_top_level_key_is_a_warning() -> None:
    config = parse(INMEM + PLAIN_LISTENER + "foo = 1\n")
    assert config.warnings == ['config.hcl: line 5: unknown configuration key "foo" (ignored)']


def test_misspelt_key_gets_a_suggestion() -> None:
    config = parse(INMEM + PLAIN_LISTENER + 'defualt_lease_ttl = "1h"\n')
    assert config.default_lease_ttl == DEFAULT_LEASE_TTL
    (warning,) = config.warnings
    assert 'unknown configuration key "defualt_lease_ttl" (ignored)' in warning
    assert 'did you mean "default_lease_ttl"?' in warning


def test_unknown_listener_key_is_a_warning() -> None:
    config = parse(INMEM + 'listener "tcp" {\n  tls_disable = true\n  adress = "0.0.0.0:1"\n}\n')
    assert config.listener.address == "127.0.0.1:8200"
    (warning,) = config.warnings
    assert warning.startswith("config.hcl: line 4: ")
    assert 'unknown key "adress"' in warning and 'did you mean "address"?' in warning


def test_unsupported_listener_key_is_a_warning() -> None:
    config = parse(INMEM + 'listener "tcp" {\n  tls_disable = true\n  max_request_duration = "90s"\n}\n')
    assert len(config.warnings) == 1 and '"max_request_duration" is not supported' in config.warnings[0]


def test_listener_limits_have_vaults_defaults_and_can_be_set() -> None:
    default = parse(INMEM + PLAIN_LISTENER).listener
    assert (default.http_read_header_timeout, default.http_read_timeout, default.http_idle_timeout) == (10, 30, 300)
    assert default.max_request_size == 32 * 1024 * 1024 and default.max_connections == 16384
    assert default.max_json_depth == 200
    tuned = parse(INMEM + 'listener "tcp" {\n  tls_disable = true\n  http_read_header_timeout = "5s"\n'
                          '  http_read_timeout = 60\n  http_idle_timeout = "1m"\n  max_request_size = 1048576\n'
                          '  max_connections = 50000\n  max_json_depth = 64\n}\n')
    assert tuned.warnings == []
    listener = tuned.listener
    assert (listener.http_read_header_timeout, listener.http_read_timeout, listener.http_idle_timeout) == (5, 60, 60)
    assert (listener.max_request_size, listener.max_connections, listener.max_json_depth) == (1048576, 50000, 64)


@pytest.mark.parametrize(("line", "message"), [
    ('http_read_timeout = "soon"', "http_read_timeout"),
    ("http_idle_timeout = 0", "at least one second"),
    ("max_request_size = -1", "positive whole number of bytes"),
    ('max_connections = "many"', "positive whole number of connections"),
    ("max_json_depth = 500", "at most 200"),
])
def test_bad_listener_limits_are_refused(line: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(INMEM + f'listener "tcp" {{\n  tls_disable = true\n  {line}\n}}\n')


def test_audit_prefixing_and_retry_window() -> None:
    config = parse(INMEM + PLAIN_LISTENER)
    assert config.allow_audit_log_prefixing is False and config.revocation_retry_window == 24 * 3600
    config = parse(INMEM + PLAIN_LISTENER + 'allow_audit_log_prefixing = true\nrevocation_retry_window = "2h"\n')
    assert config.allow_audit_log_prefixing is True and config.revocation_retry_window == 7200 and not config.warnings


def test_known_vault_keys_are_quiet() -> None:
    config = parse(
        INMEM
        + PLAIN_LISTENER
        + """
        disable_mlock = true
        cluster_addr  = "https://127.0.0.1:8201"
        cluster_name  = "coffer"
        pid_file      = "/run/coffer.pid"
        log_format    = "json"
        telemetry {
          disable_hostname = true
          usage_gauge_period = "10m"
        }
        """
    )
    assert config.warnings == []


def test_telemetry_block() -> None:
    # Without a telemetry block Prometheus' format is off (as in Vault); a block without the key keeps 24h.
    assert parse(INMEM + PLAIN_LISTENER).prometheus_retention_time == 0
    assert parse(INMEM + PLAIN_LISTENER + "telemetry {\n}\n").prometheus_retention_time == 24 * 3600
    config = parse(INMEM + PLAIN_LISTENER + 'telemetry {\n  prometheus_retention_time = "30s"\n'
                   '  statsite_address = "127.0.0.1:8125"\n}\n')
    assert config.prometheus_retention_time == 30
    (warning,) = config.warnings
    assert 'telemetry: "statsite_address" is not supported (ignored)' in warning and "line 7" in warning
    err = config_error(INMEM + PLAIN_LISTENER + 'telemetry {\n  prometheus_retention_time = "soon"\n}\n')
    assert "prometheus_retention_time" in str(err) and "line 6" in str(err)


def test_listener_telemetry_and_log_format() -> None:
    listener = ('listener "tcp" {\n  tls_disable = true\n  telemetry {\n    unauthenticated_metrics_access = true\n'
                '  }\n}\n')
    config = parse(INMEM + listener + 'log_format = "json"\n')
    assert config.listener.unauthenticated_metrics_access is True and config.log_format == "json"
    assert not config.warnings
    assert parse(INMEM + PLAIN_LISTENER).listener.unauthenticated_metrics_access is False
    assert parse(INMEM + PLAIN_LISTENER).log_format == "standard"
    err = config_error(INMEM + PLAIN_LISTENER + 'log_format = "xml"\n')
    assert 'log_format "xml" is not one of standard, json' in str(err)
    err = config_error(INMEM + listener.replace("true\n  }", '"maybe"\n  }'))
    assert "unauthenticated_metrics_access must be true or false" in str(err)


AWSKMS = 'seal "awskms" {\n  region = "eu-west-1"\n  kms_key_id = "alias/coffer"\n}\n'


def test_seal_awskms_is_read_with_vaults_keys() -> None:
    config = parse(INMEM + PLAIN_LISTENER + AWSKMS)
    assert not config.warnings
    assert config.seal.type == "awskms" and not config.seal.disabled and config.old_seal is None
    assert config.seal.options == {"region": "eu-west-1", "kms_key_id": "alias/coffer"}


def test_no_seal_stanza_is_shamir() -> None:
    config = parse(INMEM + PLAIN_LISTENER)
    assert config.seal.type == "shamir" and config.seals == [] and config.old_seal is None


def test_seal_awskms_takes_vaults_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_AWSKMS_SEAL_KEY_ID", "key-from-env")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_KMS_ENDPOINT", "http://127.0.0.1:5000")
    config = parse(INMEM + PLAIN_LISTENER + 'seal "awskms" {\n}\n')
    assert config.seal.options == {"kms_key_id": "key-from-env", "region": "ap-south-1",
                                   "endpoint": "http://127.0.0.1:5000"}


def test_seal_awskms_needs_a_key_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_AWSKMS_SEAL_KEY_ID", raising=False)
    with pytest.raises(ConfigError) as err:
        parse(INMEM + PLAIN_LISTENER + 'seal "awskms" {\n  region = "us-east-1"\n}\n')
    assert "line 5" in str(err.value) and "kms_key_id" in str(err.value)


def test_two_seal_stanzas_with_one_disabled_are_a_migration() -> None:
    config = parse(INMEM + PLAIN_LISTENER + AWSKMS + 'seal "shamir" {\n  disabled = "true"\n}\n')
    assert config.seal.type == "awskms" and config.old_seal is not None and config.old_seal.type == "shamir"
    back = parse(INMEM + PLAIN_LISTENER + AWSKMS.replace("{\n", '{\n  disabled = "true"\n', 1))
    assert back.seal.type == "shamir" and back.old_seal is not None and back.old_seal.type == "awskms"


@pytest.mark.parametrize("seals, line, says", [
    (AWSKMS + 'seal "shamir" {\n}\n', 9, "exactly one of them must have disabled"),
    (AWSKMS + AWSKMS.replace("{\n", '{\n  disabled = "true"\n', 1), 9, 'two seal "awskms" stanzas'),
    ('seal "shamir" {\n  disabled = "true"\n}\n', 5, "needs the new seal stanza"),
    ('seal "transit" {\n  address = "https://vault:8200"\n}\n', 5, 'seal type "transit" is not supported'),
    (AWSKMS.replace("alias/coffer", 'alias/coffer"\n  access_key = "AKIA'), 5, "both"),
])
def test_ambiguous_seal_stanzas_are_errors_naming_the_line(seals: str, line: int, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(INMEM + PLAIN_LISTENER + seals)
    assert f"line {line}" in str(err.value) and says in str(err.value)


def test_unknown_keys_in_json_are_warnings_too() -> None:
    document = {"storage": {"inmem": {}}, "listener": {"tcp": {"tls_disable": True, "bogus": 1}}, "extra": 2}
    config = parse_config(json.dumps(document), "c.json")
    assert len(config.warnings) == 2
    assert any('unknown configuration key "extra"' in w for w in config.warnings)
    assert any('unknown key "bogus"' in w for w in config.warnings)


# --------------------------------------------------------------------------
# Other settings


def test_ttls_accept_vault_forms() -> None:
    config = parse(INMEM + PLAIN_LISTENER + 'default_lease_ttl = 600\nmax_lease_ttl = "2d"\n')
    assert (config.default_lease_ttl, config.max_lease_ttl) == (600, 2 * 86400)


def test_max_ttl_alone_caps_the_default() -> None:
    config = parse(INMEM + PLAIN_LISTENER + 'max_lease_ttl = "1h"\n')
    assert (config.default_lease_ttl, config.max_lease_ttl) == (3600, 3600)


def test_zero_ttl_means_the_default() -> None:
    config = parse(INMEM + PLAIN_LISTENER + 'default_lease_ttl = "0"\nmax_lease_ttl = 0\n')
    assert config.default_lease_ttl == config.max_lease_ttl == DEFAULT_LEASE_TTL


def test_default_ttl_longer_than_max_ttl() -> None:
    err = config_error(INMEM + PLAIN_LISTENER + 'max_lease_ttl = "1h"\ndefault_lease_ttl = "2h"\n')
    assert "default_lease_ttl (2h0m0s) is longer than max_lease_ttl (1h0m0s)" in str(err)
    assert err.line == 6


@pytest.mark.parametrize("value", ['"abc"', "true", '"-1h"', '"1 hour"'])
def test_bad_ttl(value: str) -> None:
    err = config_error(INMEM + PLAIN_LISTENER + f"max_lease_ttl = {value}\n")
    assert str(err).startswith("config.hcl: line 5: max_lease_ttl: invalid duration")


@pytest.mark.parametrize(("written", "level"), [('"INFO"', "info"), ('"warning"', "warn"), ('"trace"', "trace")])
def test_log_level(written: str, level: str) -> None:
    assert parse(INMEM + PLAIN_LISTENER + f"log_level = {written}\n").log_level == level


def test_bad_log_level() -> None:
    err = config_error(INMEM + PLAIN_LISTENER + 'log_level = "loud"\n')
    assert '"loud"' in str(err) and "debug" in str(err)


@pytest.mark.parametrize(
    ("text", "message"),
    [('ui = "sure"\n', "ui must be true or false"), ("api_addr = 5\n", "api_addr must be a string")],
)
def test_scalar_types_are_checked(text: str, message: str) -> None:
    err = config_error(INMEM + PLAIN_LISTENER + text)
    assert message in str(err)
    assert err.line == 5


# --------------------------------------------------------------------------
# Malformed files point at the line


def test_hcl_syntax_error_names_file_line_and_column() -> None:
    text = 'storage "sqlite" {\n  path = "/x"\n  foo = = 3\n}\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="config.hcl")
    err = info.value
    assert (err.line, err.column) == (3, 9)
    assert str(err).startswith("config.hcl: line 3, column 9: unexpected")
    assert "EQUAL" in err.reason
    assert isinstance(err, ValueError)


def test_illegal_character_on_line_3() -> None:
    err = config_error('storage "inmem" {}\nui = true\n  @oops = 1\n')
    assert str(err).startswith("config.hcl: line 3, column 3: ")
    assert "Illegal character" in str(err)


def test_unclosed_string_points_at_its_start() -> None:
    err = config_error('storage "inmem" {}\nui = true\napi_addr = "http://x\n\n\n')
    assert (err.line, err.column) == (3, 12)
    assert "never closed" in str(err)


def test_unclosed_brace_points_at_the_brace() -> None:
    err = config_error('storage "inmem" {}\n\nlistener "tcp" {\n  tls_disable = true\n')
    assert (err.line, err.column) == (3, 16)
    assert "end of file" in str(err) and "never closed" in str(err)


def test_json_syntax_error_names_line_and_column() -> None:
    text = '{\n  "storage": {"inmem": {}},\n  "ui": true\n  "log_level": "info"\n}\n'
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="config.json")
    assert (info.value.line, info.value.column) == (4, 3)
    assert str(info.value).startswith("config.json: line 4, column 3: Expecting ',' delimiter")


def test_value_and_block_with_the_same_name() -> None:
    err = config_error(INMEM + PLAIN_LISTENER + "telemetry = 1\ntelemetry {\n  x = 1\n}\n")
    assert '"telemetry" is used both as a value and as a block' in str(err)


def test_load_config_error_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "server.hcl"
    path.write_text('storage "inmem" {}\nui = true\nlistener "tcp" {\n')
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert str(info.value).startswith(f"{path}: line 3, column ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.hcl"
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_config(str(path))
    assert str(path) in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(str(tmp_path))


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.hcl"
    path.write_bytes(b'storage "inmem" {}\n# caf\xe9\n')
    with pytest.raises(ConfigError, match="UTF-8") as info:
        load_config(path)
    assert info.value.line == 2


# --------------------------------------------------------------------------
# Addresses, and settings written twice


@pytest.mark.parametrize(
    ("address", "parsed"),
    [
        ("127.0.0.1:8200", ("127.0.0.1", 8200)),
        ("[::1]:443", ("::1", 443)),
        ("[::]:8200", ("::", 8200)),
        ("localhost:1", ("localhost", 1)),
        (":8200", ("0.0.0.0", 8200)),
    ],
)
def test_parse_address(address: str, parsed: tuple[str, int]) -> None:
    assert parse_address(address) == parsed


@pytest.mark.parametrize("address", ["localhost", "127.0.0.1:", "h:http", "h:70000", "::1:8200", "[::1:80", "[]:80"])
def test_parse_address_refuses(address: str) -> None:
    with pytest.raises(ValueError, match="must be host:port"):
        parse_address(address)


def test_a_top_level_setting_written_twice_keeps_the_last_with_a_warning() -> None:
    config = parse(INMEM + PLAIN_LISTENER + 'log_level = "debug"\nlog_level = "warn"\n')
    assert config.log_level == "warn"
    assert config.warnings == ['config.hcl: line 6: "log_level" is set more than once (lines 5, 6); the last value is used']


def test_a_listener_setting_written_twice_is_an_error() -> None:
    err = config_error(INMEM + 'listener "tcp" {\n  tls_disable = true\n  tls_disable = false\n}\n')
    assert str(err) == 'config.hcl: line 3: listener "tcp": tls_disable is set more than once (lines 3, 4)'


def test_a_storage_option_written_twice_is_an_error() -> None:
    err = config_error('storage "sqlite" {\n  path = "/a"\n  path = "/b"\n}\n' + PLAIN_LISTENER)
    assert str(err) == 'config.hcl: line 2: storage "sqlite": option "path" is set more than once (lines 2, 3)'


def test_a_block_then_a_value_of_one_name() -> None:
    err = config_error(INMEM + PLAIN_LISTENER + "telemetry {\n  x = 1\n}\ntelemetry = 1\n")
    assert str(err) == 'config.hcl: line 8: "telemetry" is used both as a value and as a block (lines 5 and 8)'


def test_unclosed_comment_points_at_it() -> None:
    err = config_error(INMEM + PLAIN_LISTENER + "/* a comment\n")
    assert (err.line, err.column) == (5, 1) and "comment is never closed" in str(err)


# -- coffer operator migrate's config (storage_source / storage_destination, Vault's format) ---------


def test_migration_config_reads_both_blocks(tmp_path: Path) -> None:
    from coffer.config import load_migration_config

    path = tmp_path / "migrate.hcl"
    path.write_text(textwrap.dedent("""\
        storage_source "sqlite" {
          path = "/var/lib/coffer/coffer.db"
        }
        storage_destination "postgresql" {
          connection_url = "postgresql://coffer@db/coffer"
          max_parallel   = 8
        }
    """))
    source, destination = load_migration_config(path)
    assert (source.type, source.options) == ("sqlite", {"path": "/var/lib/coffer/coffer.db"})
    assert destination.type == "postgresql"
    assert destination.options == {"connection_url": "postgresql://coffer@db/coffer", "max_parallel": "8"}


@pytest.mark.parametrize(("text", "message"), [
    ('storage_source "sqlite" { path = "a.db" }', 'a "storage_destination" block is required'),
    ('storage_destination "sqlite" { path = "a.db" }', 'a "storage_source" block is required'),
    ('storage_source "sqlite" { path = "a.db" }\nstorage_destination "raft" { path = "b" }',
     'storage type "raft" is not supported'),
    ('storage_source "sqlite" {}\nstorage_destination "sqlite" { path = "b.db" }', 'needs a "path"'),
    ('storage "sqlite" { path = "a.db" }\nstorage_destination "sqlite" { path = "b.db" }', 'unknown key "storage"'),
    ('storage_source "sqlite" { path = "a.db" }\nstorage_source "sqlite" { path = "c.db" }\n'
     'storage_destination "sqlite" { path = "b.db" }', 'only one "storage_source" block is allowed'),
])
def test_migration_config_refusals(tmp_path: Path, text: str, message: str) -> None:
    from coffer.config import load_migration_config

    path = tmp_path / "migrate.hcl"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_migration_config(path)
