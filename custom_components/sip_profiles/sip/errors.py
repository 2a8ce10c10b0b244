"""The two kinds of failure the SIP core reports.

As in h11, every error is either the peer's fault (it sent bytes that are not SIP, or broke the
protocol) or ours (we were asked to do something the protocol does not allow).
"""

from __future__ import annotations


class SipError(Exception):
    """Base class of the SIP core's errors."""


class RemoteProtocolError(SipError):
    """The peer sent something that is not valid SIP; the message is dropped."""


class LocalProtocolError(SipError):
    """We were asked to do something that SIP does not allow in the current state."""
