"""The message-summary document of RFC 3842."""

from __future__ import annotations

import pytest

from custom_components.sip_profiles.sip.documents import DocumentError
from custom_components.sip_profiles.sip.documents.message_summary import (
    MessageCounts,
    MessageSummary,
    build_message_summary,
    parse_message_summary,
)


def test_rfc_3842_example() -> None:
    body = (
        b"Messages-Waiting: yes\r\n"
        b"Message-Account: sip:alice@vmail.example.com\r\n"
        b"Voice-Message: 2/8 (0/2)\r\n"
        b"\r\n"
        b"To: <alice@atlanta.example.com>\r\n"
        b"From: <bob@biloxi.example.com>\r\n"
    )
    summary = parse_message_summary(body)
    assert summary == MessageSummary(True, "sip:alice@vmail.example.com", MessageCounts(2, 8, 0, 2))
    assert summary.new_messages == 2


def test_names_in_any_case_counts_without_urgent_and_other_classes() -> None:
    summary = parse_message_summary(b"messages-waiting:NO\nfax-message: 1/1\nVOICE-MESSAGE: 0/3\n")
    assert summary == MessageSummary(False, None, MessageCounts(0, 3))
    assert summary.new_messages == 0


@pytest.mark.parametrize(("waiting", "new"), [(b"yes", 1), (b"no", 0)])
def test_a_bare_yes_or_no_counts_one_or_none(waiting: bytes, new: int) -> None:
    assert parse_message_summary(b"Messages-Waiting: " + waiting).new_messages == new


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"Voice-Message: 1/2\r\n",
        b"Messages-Waiting: maybe\r\n",
        b"Messages-Waiting: yes\r\nVoice-Message: lots\r\n",
        b"Messages-Waiting: yes\r\ngarbage\r\n",
        b"Messages-Waiting: yes\r\n" + b"X: y\r\n" * 4000,
    ],
)
def test_what_is_not_a_summary_is_refused(body: bytes) -> None:
    with pytest.raises(DocumentError):
        parse_message_summary(body)


def test_built_summary_reads_back() -> None:
    summary = MessageSummary(True, "sip:vm@sip.test", MessageCounts(3, 1, 1, 0))
    assert parse_message_summary(build_message_summary(summary)) == summary
