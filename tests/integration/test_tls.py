"""The listener serves HTTPS with the configured certificate; the CLI and hvac verify it."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import sys

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import CofferProcess, free_port


def make_certs(directory):
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "coffer test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {n: directory / f"{n}.pem" for n in ("ca", "cert", "key")}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


def tls_server(tmp_path, min_version: str = "") -> tuple[CofferProcess, dict]:
    certs = make_certs(tmp_path)
    port = free_port()
    extra = f'\n  tls_min_version = "{min_version}"' if min_version else ""
    config = tmp_path / "coffer.hcl"
    config.write_text(f'storage "inmem" {{}}\nlistener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
                      f'  tls_cert_file = "{certs["cert"]}"\n  tls_key_file = "{certs["key"]}"{extra}\n}}\n')
    server = CofferProcess(["-config", str(config)], port, tmp_path, scheme="https", verify=str(certs["ca"]))
    return server.start(), certs


def test_https_with_hvac_and_cli(tmp_path):
    server, certs = tls_server(tmp_path)
    try:
        assert server.client(None).sys.read_seal_status()["initialized"] is False
        env = {**os.environ, "HOME": str(tmp_path), "VAULT_ADDR": server.addr}
        run = [sys.executable, "-m", "coffer", "status"]
        ok = subprocess.run([*run[:3], "status", "-ca-cert", str(certs["ca"])], env=env, capture_output=True,
                            text=True)
        assert "Initialized" in ok.stdout and ok.returncode == 2  # sealed (not initialized): exit 2
        skip = subprocess.run([*run, "-tls-skip-verify"], env=env, capture_output=True, text=True)
        assert "Initialized" in skip.stdout
        bad = subprocess.run(run, env=env, capture_output=True, text=True)
        assert bad.returncode == 2 and "certificate" in bad.stderr.lower() and "Traceback" not in bad.stderr
        # Plain HTTP to the HTTPS listener fails cleanly, and the server keeps serving.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://127.0.0.1:{server.port}/v1/sys/seal-status", timeout=5)
        assert server.client(None).sys.read_seal_status()["sealed"] is True
    finally:
        server.stop()


@pytest.mark.parametrize("min_version, refused", [("", False), ("tls13", True)])
def test_tls_min_version(tmp_path, min_version, refused):
    server, certs = tls_server(tmp_path, min_version)
    try:
        ctx = ssl.create_default_context(cafile=str(certs["ca"]))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            if refused:
                with pytest.raises(ssl.SSLError):
                    ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            else:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    assert tls.version() == "TLSv1.2"
    finally:
        server.stop()


def test_tls_settings_from_the_environment(tmp_path):
    """VAULT_CACERT and VAULT_SKIP_VERIFY (and their COFFER_ twins, which win) configure the CLI's TLS."""
    server, certs = tls_server(tmp_path)
    try:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "COFFER_"))}
        base.update(HOME=str(tmp_path), VAULT_ADDR=server.addr)

        def status(**env: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "coffer", "status"], env={**base, **env},
                                  capture_output=True, text=True, timeout=60)

        (tmp_path / "other").mkdir()
        other = make_certs(tmp_path / "other")  # a CA that did not sign the server's certificate
        assert "Initialized" in status(VAULT_CACERT=str(certs["ca"])).stdout
        assert "Initialized" in status(COFFER_CACERT=str(certs["ca"]), VAULT_CACERT=str(other["ca"])).stdout
        wrong = status(COFFER_CACERT=str(other["ca"]), VAULT_CACERT=str(certs["ca"]))
        assert wrong.returncode == 2 and "certificate" in wrong.stderr.lower()
        assert "Initialized" in status(VAULT_SKIP_VERIFY="true").stdout
        assert "Initialized" in status(COFFER_SKIP_VERIFY="1").stdout
        assert "certificate" in status(VAULT_SKIP_VERIFY="false").stderr.lower()
    finally:
        server.stop()
