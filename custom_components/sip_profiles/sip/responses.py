"""Responses of ours to requests we receive: the status codes we use and the fields copied over."""

from __future__ import annotations

from .headers import Headers
from .message import Request, Response

REASON_PHRASES = {
    180: "Ringing",
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    415: "Unsupported Media Type",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    486: "Busy Here",
    487: "Request Terminated",
    489: "Bad Event",
    500: "Server Internal Error",
    501: "Not Implemented",
    603: "Decline",
}


def build_response(request: Request, status: int, to_tag: str) -> Response:
    """A response to ``request`` with the headers RFC 3261 §8.2.6.2 copies over.

    ``to_tag`` is added to the To header unless the request already carries one.
    """
    headers = Headers()
    for via in request.headers.get_all("Via"):
        headers.add("Via", via)
    headers.add("From", request.headers.get("From") or "")
    to = request.headers.get("To") or ""
    if status > 100 and request.to.param("tag") is None:
        to = f"{to};tag={to_tag}"
    headers.add("To", to)
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", f"{request.cseq.number} {request.cseq.method}")
    return Response(status, REASON_PHRASES.get(status, ""), headers)


__all__ = ["REASON_PHRASES", "build_response"]
