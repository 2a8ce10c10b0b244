"""Credentials never show in a message printed for people."""

from __future__ import annotations

from custom_components.sip_profiles.sip.trace import masked_text


def test_masked_text_hides_folded_credentials_and_keeps_the_rest() -> None:
    message = (
        b"REGISTER sip:sip.test SIP/2.0\r\n"
        b'Authorization: Digest username="alice", realm="sip.test",\r\n'
        b' nonce="abc", uri="sip:sip.test", response="0123456789abcdef"\r\n'
        b'proxy-authorization: Digest username="alice", response="fedcba"\r\n'
        b"Content-Length: 0\r\n\r\n"
    )
    text = masked_text(message)
    assert "0123456789abcdef" not in text
    assert "fedcba" not in text
    assert "abc" not in text
    assert 'Authorization: Digest username="alice", realm="sip.test"' in text
    assert text.splitlines()[0] == "REGISTER sip:sip.test SIP/2.0"
    assert text.endswith("Content-Length: 0")
