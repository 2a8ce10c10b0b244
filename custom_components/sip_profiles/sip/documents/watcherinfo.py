"""Watcher information (RFC 3857 and RFC 3858, ``application/watcherinfo+xml``).

Who subscribes to our presence, and whether the subscription waits for our approval.
:func:`parse_watcherinfo` reads one document; :class:`WatcherTracker` keeps the current watchers
across a subscription's full and partial documents, by the same version rules as dialog-info.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from xml.etree.ElementTree import Element

from ._tracking import ApplyResult, DocumentState, VersionedEntries
from ._xml import (
    DEFAULT_MAX_BYTES,
    XML_LANG,
    DocumentError,
    enum_value,
    local_name,
    non_negative_int,
    parse_xml,
    required,
    text_of,
)

WATCHERINFO_NAMESPACE = "urn:ietf:params:xml:ns:watcherinfo"
_NS = f"{{{WATCHERINFO_NAMESPACE}}}"


class WatcherStatus(StrEnum):
    """The state of a watcher's subscription (RFC 3857 §3.3)."""

    PENDING = "pending"
    ACTIVE = "active"
    WAITING = "waiting"
    TERMINATED = "terminated"


class WatcherEvent(StrEnum):
    """What last changed the watcher's subscription (RFC 3857 §3.3)."""

    SUBSCRIBE = "subscribe"
    APPROVED = "approved"
    DEACTIVATED = "deactivated"
    PROBATION = "probation"
    REJECTED = "rejected"
    TIMEOUT = "timeout"
    GIVEUP = "giveup"
    NORESOURCE = "noresource"


@dataclass(frozen=True, slots=True)
class Watcher:
    """One ``<watcher>``: who watches, and how far their subscription got."""

    id: str
    status: WatcherStatus
    event: WatcherEvent
    uri: str
    display_name: str | None = None
    display_name_lang: str | None = None
    expiration: int | None = None
    duration_subscribed: int | None = None


@dataclass(frozen=True, slots=True)
class WatcherList:
    """The watchers of one resource for one event package."""

    resource: str
    package: str
    watchers: tuple[Watcher, ...]


@dataclass(frozen=True, slots=True)
class WatcherInfo:
    """A parsed watcherinfo document."""

    version: int
    state: DocumentState
    watcher_lists: tuple[WatcherList, ...]


def parse_watcherinfo(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> WatcherInfo:
    """Parse an ``application/watcherinfo+xml`` body; raises :class:`DocumentError` on bad input."""
    root = parse_xml(data, max_bytes=max_bytes)
    if root.tag != f"{_NS}watcherinfo":
        raise DocumentError(
            f"not a watcherinfo document: the root element is <{local_name(root.tag)}>"
        )
    return WatcherInfo(
        version=non_negative_int(required(root, "version", "<watcherinfo>"), "the version"),
        state=enum_value(DocumentState, required(root, "state", "<watcherinfo>"), "the state"),
        watcher_lists=tuple(
            WatcherList(
                resource=required(element, "resource", "a <watcher-list>"),
                package=required(element, "package", "a <watcher-list>"),
                watchers=tuple(_parse_watcher(child) for child in element.findall(f"{_NS}watcher")),
            )
            for element in root.findall(f"{_NS}watcher-list")
        ),
    )


def _parse_watcher(element: Element) -> Watcher:
    watcher_id = required(element, "id", "a <watcher>")
    what = f"watcher {watcher_id!r}"
    uri = text_of(element)
    if not uri:
        raise DocumentError(f"{what} has no URI")
    expiration = element.get("expiration")
    duration = element.get("duration-subscribed")
    return Watcher(
        id=watcher_id,
        status=enum_value(
            WatcherStatus, required(element, "status", what), f"the status of {what}"
        ),
        event=enum_value(WatcherEvent, required(element, "event", what), f"the event of {what}"),
        uri=uri,
        display_name=element.get("display-name"),
        display_name_lang=element.get(XML_LANG),
        expiration=None
        if expiration is None
        else non_negative_int(expiration, f"the expiration of {what}"),
        duration_subscribed=None
        if duration is None
        else non_negative_int(duration, f"the duration-subscribed of {what}"),
    )


class WatcherTracker:
    """The current watchers of one watcherinfo subscription.

    A full document replaces every watcher; a partial one updates watchers by resource, package
    and id and removes those it reports terminated. Stale versions are ignored, and a partial
    document after a missed version makes :meth:`apply` return
    :attr:`ApplyResult.RESYNC_NEEDED`. Call :meth:`reset` when a new subscription starts.
    """

    __slots__ = ("_watchers",)

    def __init__(self) -> None:
        self._watchers = VersionedEntries[tuple[str, str, str], tuple[str, str, Watcher]](
            lambda entry: entry[2].status is WatcherStatus.TERMINATED
        )

    @property
    def version(self) -> int | None:
        """The version of the last document applied, None before the first one."""
        return self._watchers.version

    @property
    def watcher_lists(self) -> tuple[WatcherList, ...]:
        """The current watchers grouped by resource and package (lists without any left out)."""
        grouped: dict[tuple[str, str], list[Watcher]] = {}
        for resource, package, watcher in self._watchers.values():
            grouped.setdefault((resource, package), []).append(watcher)
        return tuple(
            WatcherList(resource, package, tuple(watchers))
            for (resource, package), watchers in grouped.items()
        )

    @property
    def pending(self) -> tuple[Watcher, ...]:
        """The watchers waiting for the user's approval."""
        return tuple(
            watcher
            for _, _, watcher in self._watchers.values()
            if watcher.status is WatcherStatus.PENDING
        )

    def apply(self, info: WatcherInfo) -> ApplyResult:
        """Apply the next document of the subscription."""
        return self._watchers.apply(
            info.version,
            info.state,
            (
                (
                    (watcher_list.resource, watcher_list.package, watcher.id),
                    (watcher_list.resource, watcher_list.package, watcher),
                )
                for watcher_list in info.watcher_lists
                for watcher in watcher_list.watchers
            ),
        )

    def reset(self) -> None:
        """Forget all watchers and versions (a new subscription)."""
        self._watchers.reset()
