"""TLS client settings for SIP over TLS."""

from __future__ import annotations

import ssl


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
