"""The XML documents of SIP presence and provisioning, parsed safely and without I/O.

Every parser reads untrusted input through one hardened expat front end (no DOCTYPE, no
entities, bounded size and depth) and raises :class:`DocumentError` for anything it cannot
accept. The functions hold no shared state, so they may run in any thread.
"""

from ._tracking import ApplyResult, DocumentState
from ._xml import DEFAULT_MAX_BYTES, DocumentError
from .dialog_info import (
    Dialog,
    DialogInfo,
    DialogState,
    DialogTracker,
    Direction,
    Lamp,
    LampState,
    Participant,
    lamp_of,
    parse_dialog_info,
)
from .pidf import (
    BasicStatus,
    MyPresence,
    Note,
    Person,
    PresenceDocument,
    PresenceState,
    PresenceTuple,
    best_note,
    build_pidf,
    parse_pidf,
    summarize,
)
from .provisioning import (
    ProvisionedUser,
    ProvisioningDocument,
    ProvisioningError,
    ProvisioningProblem,
    ServerRole,
    Session,
    SipServer,
    parse_provisioning,
)
from .watcherinfo import (
    Watcher,
    WatcherEvent,
    WatcherInfo,
    WatcherList,
    WatcherStatus,
    WatcherTracker,
    parse_watcherinfo,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "ApplyResult",
    "BasicStatus",
    "Dialog",
    "DialogInfo",
    "DialogState",
    "DialogTracker",
    "Direction",
    "DocumentError",
    "DocumentState",
    "Lamp",
    "LampState",
    "MyPresence",
    "Note",
    "Participant",
    "Person",
    "PresenceDocument",
    "PresenceState",
    "PresenceTuple",
    "ProvisionedUser",
    "ProvisioningDocument",
    "ProvisioningError",
    "ProvisioningProblem",
    "ServerRole",
    "Session",
    "SipServer",
    "Watcher",
    "WatcherEvent",
    "WatcherInfo",
    "WatcherList",
    "WatcherStatus",
    "WatcherTracker",
    "best_note",
    "build_pidf",
    "lamp_of",
    "parse_dialog_info",
    "parse_pidf",
    "parse_provisioning",
    "parse_watcherinfo",
    "summarize",
]
