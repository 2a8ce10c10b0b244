"""SIP messages as text for logs, diagnostics and the probe, with credentials masked."""

from __future__ import annotations

import re

from .auth import mask_authorization

_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization"})
_HEAD_END_RE = re.compile(r"\r?\n\r?\n")
_FOLD_RE = re.compile(r"[ \t]*\r?\n[ \t]+")
_LINE_RE = re.compile(r"\r?\n")


def masked_text(data: bytes) -> str:
    """A SIP message as text, its Authorization and Proxy-Authorization values masked.

    Folded header lines are joined first, so a secret continued on the next line is masked too;
    lines end in CRLF as on the wire, and the body is left as it is.
    """
    text = data.decode("utf-8", "replace")
    parts = _HEAD_END_RE.split(text, maxsplit=1)
    lines = _LINE_RE.split(_FOLD_RE.sub(" ", parts[0]))
    for index, line in enumerate(lines):
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() in _CREDENTIAL_HEADERS:
            lines[index] = f"{name}: {mask_authorization(value.strip())}"
    body = parts[1] if len(parts) > 1 else ""
    return "\r\n".join(lines) + (f"\r\n\r\n{body.rstrip()}" if body.strip() else "")
