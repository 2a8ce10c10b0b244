"""SIP messages as text for logs and diagnostics, with credentials masked."""

from __future__ import annotations

import re

from .auth import mask_authorization

_CREDENTIAL_LINE = re.compile(
    rb"^((?:Proxy-)?Authorization[ \t]*:[ \t]*)([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)",
    re.IGNORECASE | re.MULTILINE,
)


def masked_text(data: bytes) -> str:
    """Decode a message for display, replacing every digest answer's secrets with ``***``."""

    def mask(match: re.Match[bytes]) -> bytes:
        value = match.group(2).decode("utf-8", "replace")
        return match.group(1) + mask_authorization(" ".join(value.split())).encode()

    return _CREDENTIAL_LINE.sub(mask, data).decode("utf-8", "replace")
