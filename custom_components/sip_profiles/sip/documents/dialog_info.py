"""Dialog state documents (RFC 4235, ``application/dialog-info+xml``): the busy lamps of a PBX.

:func:`parse_dialog_info` reads one document; :class:`DialogTracker` applies a subscription's
documents in order and tells which lamp to light:

- the lamp is ``in_call`` when a dialog is ``confirmed`` (a call beats a ringing line);
- else ``ringing`` when a dialog is ``trying``, ``proceeding`` or ``early``;
- else ``idle`` (no dialog, or only terminated ones).

The dialog that decides it (the first of its kind in document order) gives the lamp its
direction and remote party.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from xml.etree.ElementTree import Element

from ._tracking import ApplyResult, DocumentState, VersionedEntries
from ._xml import (
    DEFAULT_MAX_BYTES,
    DocumentError,
    enum_value,
    local_name,
    non_negative_int,
    parse_xml,
    required,
    text_of,
)

DIALOG_INFO_NAMESPACE = "urn:ietf:params:xml:ns:dialog-info"
_NS = f"{{{DIALOG_INFO_NAMESPACE}}}"


class DialogState(StrEnum):
    """The state of one dialog (RFC 4235 §3.7.1)."""

    TRYING = "trying"
    PROCEEDING = "proceeding"
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Direction(StrEnum):
    """Whether the watched entity placed the call (initiator) or receives it (recipient)."""

    INITIATOR = "initiator"
    RECIPIENT = "recipient"


class LampState(StrEnum):
    """What a busy lamp shows."""

    IDLE = "idle"
    RINGING = "ringing"
    IN_CALL = "in_call"


@dataclass(frozen=True, slots=True)
class Participant:
    """One end of a dialog: its identity URI, display name and target URI, each if given."""

    identity: str | None
    display: str | None
    target: str | None


@dataclass(frozen=True, slots=True)
class Dialog:
    """One ``<dialog>`` of a dialog-info document."""

    id: str
    state: DialogState
    call_id: str | None = None
    local_tag: str | None = None
    remote_tag: str | None = None
    direction: Direction | None = None
    local: Participant | None = None
    remote: Participant | None = None


@dataclass(frozen=True, slots=True)
class DialogInfo:
    """A parsed dialog-info document."""

    entity: str
    version: int
    state: DocumentState
    dialogs: tuple[Dialog, ...]


@dataclass(frozen=True, slots=True)
class Lamp:
    """The lamp and, unless idle, the direction and remote party of the dialog behind it."""

    state: LampState
    direction: Direction | None = None
    remote: Participant | None = None


def parse_dialog_info(data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> DialogInfo:
    """Parse an ``application/dialog-info+xml`` body; raises :class:`DocumentError` on bad input."""
    root = parse_xml(data, max_bytes=max_bytes)
    if root.tag != f"{_NS}dialog-info":
        raise DocumentError(
            f"not a dialog-info document: the root element is <{local_name(root.tag)}>"
        )
    return DialogInfo(
        entity=required(root, "entity", "<dialog-info>"),
        version=non_negative_int(required(root, "version", "<dialog-info>"), "the version"),
        state=enum_value(DocumentState, required(root, "state", "<dialog-info>"), "the state"),
        dialogs=tuple(_parse_dialog(element) for element in root.findall(f"{_NS}dialog")),
    )


def _parse_dialog(element: Element) -> Dialog:
    dialog_id = required(element, "id", "a <dialog>")
    state_element = element.find(f"{_NS}state")
    if state_element is None:
        raise DocumentError(f"dialog {dialog_id!r} has no <state>")
    raw_direction = element.get("direction")
    return Dialog(
        id=dialog_id,
        state=enum_value(DialogState, text_of(state_element), f"the state of dialog {dialog_id!r}"),
        call_id=element.get("call-id"),
        local_tag=element.get("local-tag"),
        remote_tag=element.get("remote-tag"),
        direction=None
        if raw_direction is None
        else enum_value(Direction, raw_direction, f"the direction of dialog {dialog_id!r}"),
        local=_participant(element.find(f"{_NS}local")),
        remote=_participant(element.find(f"{_NS}remote")),
    )


def _participant(element: Element | None) -> Participant | None:
    if element is None:
        return None
    identity = element.find(f"{_NS}identity")
    target = element.find(f"{_NS}target")
    return Participant(
        identity=None if identity is None else text_of(identity) or None,
        display=None if identity is None else identity.get("display"),
        target=None if target is None else target.get("uri"),
    )


def lamp_of(dialogs: Iterable[Dialog]) -> Lamp:
    """The lamp for a set of dialogs (rules in the module docstring)."""
    ringing: Dialog | None = None
    for dialog in dialogs:
        if dialog.state is DialogState.CONFIRMED:
            return Lamp(LampState.IN_CALL, dialog.direction, dialog.remote)
        if ringing is None and dialog.state is not DialogState.TERMINATED:
            ringing = dialog
    if ringing is None:
        return Lamp(LampState.IDLE)
    return Lamp(LampState.RINGING, ringing.direction, ringing.remote)


class DialogTracker:
    """The live dialogs of one subscription, kept across full and partial documents.

    A full document replaces every dialog; a partial one updates dialogs by id and removes
    those it reports terminated. Documents whose version is not newer than the last one applied
    are ignored; a partial document after a missed version is ignored too and :meth:`apply`
    returns :attr:`ApplyResult.RESYNC_NEEDED`: refresh the subscription to get a full document.
    Call :meth:`reset` when a new subscription starts numbering its versions again.
    """

    __slots__ = ("_dialogs",)

    def __init__(self) -> None:
        self._dialogs = VersionedEntries[str, Dialog](
            lambda dialog: dialog.state is DialogState.TERMINATED
        )

    @property
    def version(self) -> int | None:
        """The version of the last document applied, None before the first one."""
        return self._dialogs.version

    @property
    def dialogs(self) -> tuple[Dialog, ...]:
        """The dialogs that are not terminated, in the order they first appeared."""
        return self._dialogs.values()

    @property
    def lamp(self) -> Lamp:
        """The lamp for the current dialogs."""
        return lamp_of(self._dialogs.values())

    def apply(self, info: DialogInfo) -> ApplyResult:
        """Apply the next document of the subscription."""
        return self._dialogs.apply(
            info.version, info.state, ((dialog.id, dialog) for dialog in info.dialogs)
        )

    def reset(self) -> None:
        """Forget all dialogs and versions (a new subscription)."""
        self._dialogs.reset()
