"""The versioned full/partial state that dialog-info (RFC 4235) and watcherinfo (RFC 3857) share.

Both formats number their documents with a ``version`` that grows by one per NOTIFY of a
subscription and mark each as ``full`` (the whole state) or ``partial`` (only what changed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum


class DocumentState(StrEnum):
    """Whether a document carries the whole state or only the changes since the previous one."""

    FULL = "full"
    PARTIAL = "partial"


class ApplyResult(StrEnum):
    """What a tracker did with a document."""

    APPLIED = "applied"
    """The document is now part of the tracked state."""
    STALE = "stale"
    """The version is not newer than the last one applied; the document was ignored."""
    RESYNC_NEEDED = "resync_needed"
    """A partial document does not follow the last one applied (a version was missed, or there
    is no full state yet); it was ignored. Refresh the subscription to get a full document."""


class VersionedEntries[K, V]:
    """Entries keyed by ``K`` kept current across full and partial documents.

    Entries for which ``gone`` is true (a terminated dialog, a terminated watcher) are dropped:
    a partial document reports them once so that they can be removed.
    """

    __slots__ = ("_entries", "_gone", "_version")

    def __init__(self, gone: Callable[[V], bool]) -> None:
        self._entries: dict[K, V] = {}
        self._gone = gone
        self._version: int | None = None

    @property
    def version(self) -> int | None:
        """The version of the last document applied, None before the first one."""
        return self._version

    def values(self) -> tuple[V, ...]:
        """The current entries in the order they first appeared."""
        return tuple(self._entries.values())

    def reset(self) -> None:
        """Forget everything; the next subscription numbers its documents from scratch."""
        self._entries.clear()
        self._version = None

    def apply(
        self, version: int, state: DocumentState, entries: Iterable[tuple[K, V]]
    ) -> ApplyResult:
        """Apply one document's entries according to its version and state."""
        if self._version is not None and version <= self._version:
            return ApplyResult.STALE
        if state is DocumentState.PARTIAL and (
            self._version is None or version != self._version + 1
        ):
            return ApplyResult.RESYNC_NEEDED
        if state is DocumentState.FULL:
            self._entries.clear()
        for key, value in entries:
            if self._gone(value):
                self._entries.pop(key, None)
            else:
                self._entries[key] = value
        self._version = version
        return ApplyResult.APPLIED
