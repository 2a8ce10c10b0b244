"""The TLS client context: verified by default, extra trust anchors, or explicitly unchecked."""

from __future__ import annotations

from pathlib import Path
import ssl

import pytest

from custom_components.sip_profiles.sip.aio.tls import client_ssl_context
from tests.harness.certs import TlsFiles


def test_default_context_verifies_chain_and_name() -> None:
    context = client_ssl_context()

    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


def test_ca_file_adds_to_the_system_anchors(tls_files: TlsFiles) -> None:
    system = client_ssl_context().cert_store_stats()["x509_ca"]

    context = client_ssl_context(ca_file=str(tls_files.ca_file))

    assert context.cert_store_stats()["x509_ca"] == system + 1
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname


def test_verify_false_checks_nothing(tmp_path: Path) -> None:
    # The CA file is not read at all: nothing would be checked against it.
    context = client_ssl_context(verify=False, ca_file=str(tmp_path / "missing.pem"))

    assert context.verify_mode is ssl.CERT_NONE
    assert not context.check_hostname


def test_missing_ca_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        client_ssl_context(ca_file=str(tmp_path / "missing.pem"))


def test_ca_file_without_certificates_is_an_ssl_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")

    with pytest.raises(ssl.SSLError):
        client_ssl_context(ca_file=str(garbage))
