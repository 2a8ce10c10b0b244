"""TLS settings for SIP over TLS: ours as a client, and as the server of connections to us."""

from __future__ import annotations

import datetime
import functools
from pathlib import Path
import ssl
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def client_ssl_context(*, verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
    """Return a TLS client context for SIP servers.

    BLOCKING: reads the system trust store and ``ca_file``; run it in an executor.

    With ``verify`` (the default) the server's certificate must chain to a trusted anchor and
    name the host we asked for. ``ca_file`` (PEM) adds trust anchors to the system ones, for
    servers with a private certificate authority. ``verify=False`` accepts any certificate and
    any name; it is meant only for profiles that explicitly ask for it, and ``ca_file`` is not
    read then since nothing would be checked against it.

    Raises OSError when ``ca_file`` cannot be read and ssl.SSLError when it holds no valid
    certificate.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    return context


@functools.cache
def self_signed_server_context() -> ssl.SSLContext:
    """Return a TLS server context with a self-signed certificate, made once per process.

    BLOCKING: makes a key and writes, loads and removes a PEM file; run it in an executor.

    It serves the connections a SIP server opens to our Contact. The certificate names no one:
    a user agent reached at an IP address has no name a certificate authority could vouch
    for, and servers do not check the certificate of a user agent they connect to. Every
    profile shares it, since a key per profile would buy nothing and cost a key per start.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SIP Profiles user agent")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) + certificate.public_bytes(serialization.Encoding.PEM)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    # The ssl module loads certificates from files only; the folder is readable by us alone.
    with tempfile.TemporaryDirectory(prefix="sip-profiles-") as folder:
        identity = Path(folder, "identity.pem")
        identity.write_bytes(pem)
        context.load_cert_chain(identity)
    return context
