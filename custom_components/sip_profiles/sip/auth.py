"""Digest authentication as SIP uses it (RFC 3261 §22, RFC 7616 and RFC 8760 algorithms).

The client works on header values and request facts only: it reads the ``WWW-Authenticate``
or ``Proxy-Authenticate`` values of a 401 or 407, decides whether to answer, and writes the
``Authorization`` or ``Proxy-Authorization`` values of the next request. Per realm it keeps the
last nonce, so later requests answer pre-emptively with the next nonce count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
import functools
import hashlib
import os
import re
from typing import TYPE_CHECKING

from .errors import LocalProtocolError, RemoteProtocolError
from .grammar import (
    QUOTED_STRING,
    TOKEN_CLASS,
    WSP,
    is_token,
    parse_params,
    quote,
    split_outside_quotes,
    unescape_quoted,
)

if TYPE_CHECKING:
    from _hashlib import HASH


# hashlib's name of each base algorithm, weakest first.
_HASH_NAMES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}


class Algorithm(Enum):
    """A digest algorithm; the value is its name in the ``algorithm`` directive."""

    MD5 = "MD5"
    MD5_SESS = "MD5-sess"
    SHA_256 = "SHA-256"
    SHA_256_SESS = "SHA-256-sess"
    SHA_512_256 = "SHA-512-256"
    SHA_512_256_SESS = "SHA-512-256-sess"

    session: bool
    """Whether A1 mixes in the nonce and cnonce (the ``-sess`` variants)."""
    strength: int
    """Rank for choosing among challenges; a ``-sess`` variant ranks with its base."""
    available: bool
    """Whether this Python's hashlib has the hash function."""

    def __init__(self, value: str) -> None:
        # Plain attributes, set once: each request reads them, and an enum's properties and
        # hashing are Python calls.
        base = value.removesuffix("-sess")
        name = _HASH_NAMES[base]
        self.session = base != value
        self.strength = list(_HASH_NAMES).index(base)
        self.available = name in hashlib.algorithms_available
        # The named constructors (hashlib.md5) are about twice as fast as hashlib.new(name).
        self._new_hash: Callable[[bytes], HASH] = getattr(hashlib, name, None) or (
            functools.partial(hashlib.new, name)
        )

    def hexdigest(self, data: bytes) -> str:
        """The lower-case hex hash of ``data`` with this algorithm's hash function."""
        return self._new_hash(data).hexdigest()


_BY_NAME = {algorithm.value.lower(): algorithm for algorithm in Algorithm if algorithm.available}
_KNOWN_QOP = frozenset({"auth", "auth-int"})
_SCHEME_RE = re.compile(r"([^ \t=]+)[ \t]*(.*)", re.DOTALL)
_DIRECTIVE = f"({TOKEN_CLASS}+)[ \t]*=[ \t]*({QUOTED_STRING}|{TOKEN_CLASS}+)"
_DIRECTIVE_RE = re.compile(_DIRECTIVE, re.DOTALL)
# The usual value, one Digest challenge of token and quoted-string directives, is checked by
# one match and read by one findall; anything else takes the general path of _split_schemes.
_DIGEST_ONLY_RE = re.compile(
    f"[ \t]*[Dd][Ii][Gg][Ee][Ss][Tt][ \t]+{_DIRECTIVE}(?:[ \t]*,[ \t]*{_DIRECTIVE})*[ \t]*",
    re.DOTALL,
)
_SECRET_DIRECTIVES = frozenset({"response", "cnonce", "nonce", "nextnonce", "rspauth"})
_MASK = '"***"'


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password, for one realm or (realm None) for any realm."""

    username: str
    password: str = field(repr=False)
    realm: str | None = None

    def __post_init__(self) -> None:
        """Refuse a username that could not be written into a header."""
        if _breaks_lines(self.username):
            raise LocalProtocolError("a username must not contain line breaks or NUL")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One Digest challenge from a ``WWW-Authenticate`` or ``Proxy-Authenticate`` value."""

    realm: str
    nonce: str
    algorithm: Algorithm
    qop: frozenset[str]
    opaque: str | None
    stale: bool
    proxy: bool
    """Whether it came in ``Proxy-Authenticate`` (a 407)."""


def _split_schemes(value: str) -> list[tuple[str, list[str]]]:
    """Split a header value into (auth scheme, its raw ``name=value`` items) pairs.

    Challenges and their parameters share the comma as separator; an item whose first word
    is not followed by ``=`` opens the next challenge.
    """
    schemes: list[tuple[str, list[str]]] = []
    for part in split_outside_quotes(value, ","):
        text = part.strip(WSP)
        if not text:
            continue
        match = _SCHEME_RE.fullmatch(text)
        if match is None:
            raise RemoteProtocolError(f"bad authentication item {text!r}")
        head, rest = match.groups()
        if rest.startswith("="):
            if not schemes:
                raise RemoteProtocolError(f"parameter before any scheme in {value!r}")
            schemes[-1][1].append(text)
            continue
        if not is_token(head):
            raise RemoteProtocolError(f"bad authentication scheme {head!r}")
        schemes.append((head, [rest] if rest else []))
    return schemes


def _directives(pairs: Iterable[tuple[str, str | None]]) -> dict[str, str]:
    """Directive name (lower case) -> value; one without ``=`` reads as the empty string."""
    directives: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        if key in directives:
            raise RemoteProtocolError(f"repeated directive {key!r} in a Digest challenge")
        directives[key] = "" if value is None else value
    return directives


def _parse_digest(directives: dict[str, str], *, proxy: bool) -> Challenge | None:
    """Read one Digest challenge's directives; None when it asks for what we do not support."""
    realm = directives.get("realm")
    nonce = directives.get("nonce")
    if realm is None or nonce is None:
        raise RemoteProtocolError("Digest challenge without realm or nonce")
    algorithm = _BY_NAME.get((directives.get("algorithm") or "MD5").lower())
    qop = frozenset(
        item.strip(WSP).lower() for item in directives.get("qop", "").split(",") if item.strip(WSP)
    )
    if algorithm is None or (qop and not qop & _KNOWN_QOP):
        return None
    return Challenge(
        realm=realm,
        nonce=nonce,
        algorithm=algorithm,
        qop=qop,
        opaque=directives.get("opaque"),
        stale=directives.get("stale", "").lower() == "true",
        proxy=proxy,
    )


def parse_challenges(value: str, *, proxy: bool) -> list[Challenge]:
    """Parse the Digest challenges of one ``WWW-Authenticate``/``Proxy-Authenticate`` value.

    Other schemes (``Basic``, ``NTLM``, ...) and Digest challenges with an algorithm or qop
    we do not support are skipped. A malformed value raises RemoteProtocolError.
    """
    if _breaks_lines(value):
        raise RemoteProtocolError("line break or NUL in an authentication header")
    if _DIGEST_ONLY_RE.fullmatch(value):
        directives = _directives(
            [
                (name, unescape_quoted(raw) if raw.startswith('"') else raw)
                for name, raw in _DIRECTIVE_RE.findall(value)
            ]
        )
        challenge = _parse_digest(directives, proxy=proxy)
        return [] if challenge is None else [challenge]
    challenges: list[Challenge] = []
    for scheme, items in _split_schemes(value):
        if scheme.lower() != "digest":
            continue
        params = parse_params(",".join(items), ",")
        challenge = _parse_digest(_directives(params), proxy=proxy)
        if challenge is not None:
            challenges.append(challenge)
    return challenges


class ChallengeOutcome(Enum):
    """What to do after a 401 or 407."""

    ANSWERED = "answered"
    """Send the request again with ``authorization_headers()``."""
    STALE = "stale"
    """Likewise; the nonce had only expired, the credentials were good."""
    REJECTED = "rejected"
    """Our fresh answer for a realm was refused: the credentials are wrong, do not resend."""
    NO_CREDENTIALS = "no_credentials"
    """We hold no credentials for any realm asked."""
    UNSUPPORTED = "unsupported"
    """No Digest challenge with an algorithm we support."""


class _AnswerState(Enum):
    """Where the answer for one realm stands."""

    PENDING = "pending"  # challenged; the next request carries a fresh answer
    SENT = "sent"  # a fresh answer went out; a new challenge now means it was refused
    ACCEPTED = "accepted"  # a request carrying it succeeded; later requests reuse the nonce
    REUSED = "reused"  # a pre-emptive answer on an accepted nonce went out
    REJECTED = "rejected"  # a fresh answer was refused; never sent again


@dataclass(slots=True)
class _RealmAnswer:
    """The nonce held for one realm and what became of our answers to it."""

    challenge: Challenge
    credentials: Credentials
    after_stale: bool
    ha1: str = field(repr=False)
    """H(A1); for a -sess algorithm, once the first answer is written, the session key."""
    state: _AnswerState = _AnswerState.PENDING
    nonce_count: int = 0
    session_cnonce: str | None = None


class DigestClient:
    """Answers digest challenges for one user agent's requests.

    Typical use: a 401 arrives -> ``handle_challenge`` -> ANSWERED -> the request is sent again
    with ``authorization_headers()`` -> a 2xx -> ``request_succeeded()``. Later requests carry
    ``authorization_headers()`` at once, saving the round trip of a challenge.
    """

    def __init__(
        self,
        credentials: Sequence[Credentials],
        *,
        cnonce_factory: Callable[[], str] = lambda: os.urandom(16).hex(),
    ) -> None:
        """Hold ``credentials`` (the first one matching a realm wins, realm None last)."""
        self._credentials = tuple(credentials)
        self._cnonce_factory = cnonce_factory
        self._answers: dict[tuple[bool, str], _RealmAnswer] = {}
        # H(A1) per (algorithm, realm) and H(A2) per (algorithm, method, Request-URI): both are
        # fixed while the credentials and the request are, so an answer costs one hash, not three.
        self._ha1: dict[tuple[str, str], str] = {}
        self._ha2: dict[tuple[str, str, str], str] = {}

    def _credentials_for(self, realm: str) -> Credentials | None:
        for wanted in (realm, None):
            for credentials in self._credentials:
                if credentials.realm == wanted:
                    return credentials
        return None

    def handle_challenge(self, status: int, challenge_values: Sequence[str]) -> ChallengeOutcome:
        """Take the challenges of a 401 (``WWW-Authenticate``) or 407 (``Proxy-Authenticate``).

        Every realm challenged that we hold credentials for is answered with the strongest
        algorithm offered for it. A malformed value raises RemoteProtocolError and changes
        nothing.
        """
        if status not in (401, 407):
            raise LocalProtocolError(f"status {status} carries no challenge")
        proxy = status == 407
        strongest: dict[str, Challenge] = {}
        for value in challenge_values:
            for challenge in parse_challenges(value, proxy=proxy):
                held = strongest.get(challenge.realm)
                if held is None or challenge.algorithm.strength > held.algorithm.strength:
                    strongest[challenge.realm] = challenge
        if not strongest:
            return ChallengeOutcome.UNSUPPORTED
        outcomes: list[ChallengeOutcome] = []
        for realm, challenge in strongest.items():
            credentials = self._credentials_for(realm)
            if credentials is not None:
                outcomes.append(self._answer(challenge, credentials))
        if not outcomes:
            return ChallengeOutcome.NO_CREDENTIALS
        if ChallengeOutcome.REJECTED in outcomes:
            return ChallengeOutcome.REJECTED
        if all(outcome is ChallengeOutcome.STALE for outcome in outcomes):
            return ChallengeOutcome.STALE
        return ChallengeOutcome.ANSWERED

    def _answer(self, challenge: Challenge, credentials: Credentials) -> ChallengeOutcome:
        key = (challenge.proxy, challenge.realm)
        previous = self._answers.get(key)
        if previous is not None and (
            previous.state is _AnswerState.REJECTED
            or (
                previous.state is _AnswerState.SENT
                # A stale challenge to an answer that itself used a nonce just called stale
                # would make the server and us loop for ever; treat it as a refusal.
                and (not challenge.stale or previous.after_stale)
            )
        ):
            previous.state = _AnswerState.REJECTED
            return ChallengeOutcome.REJECTED
        ha1 = self._hash_a1(challenge.algorithm, challenge.realm, credentials)
        self._answers[key] = _RealmAnswer(challenge, credentials, challenge.stale, ha1)
        return ChallengeOutcome.STALE if challenge.stale else ChallengeOutcome.ANSWERED

    def authorization_headers(
        self, method: str, uri: str, body: bytes = b""
    ) -> list[tuple[str, str]]:
        """The (header name, value) pairs answering every nonce held; empty before a challenge.

        ``uri`` is the Request-URI, ``body`` the message body (hashed for qop=auth-int). Each
        call counts as one request sent: the nonce count goes up by one.
        """
        if not is_token(method):
            raise LocalProtocolError(f"bad method {method!r}")
        if _breaks_lines(uri):
            raise LocalProtocolError("a Request-URI must not contain line breaks or NUL")
        headers: list[tuple[str, str]] = []
        for answer in self._answers.values():
            if answer.state is _AnswerState.REJECTED:
                continue
            answer.nonce_count += 1
            if answer.state is _AnswerState.PENDING:
                answer.state = _AnswerState.SENT
            elif answer.state is _AnswerState.ACCEPTED:
                answer.state = _AnswerState.REUSED
            name = "Proxy-Authorization" if answer.challenge.proxy else "Authorization"
            headers.append((name, self._authorization(answer, method, uri, body)))
        return headers

    def _authorization(self, answer: _RealmAnswer, method: str, uri: str, body: bytes) -> str:
        challenge = answer.challenge
        algorithm = challenge.algorithm
        nonce = challenge.nonce
        if algorithm.session:
            # The session key H(A1) is fixed for the nonce's lifetime (RFC 2617 §3.2.2.2);
            # keeping its cnonce satisfies servers that recompute it from each request too.
            if answer.session_cnonce is None:
                answer.session_cnonce = self._cnonce_factory()
                answer.ha1 = algorithm.hexdigest(
                    f"{answer.ha1}:{nonce}:{answer.session_cnonce}".encode()
                )
            cnonce = answer.session_cnonce
        else:
            cnonce = self._cnonce_factory()
        qop = "auth" if "auth" in challenge.qop else ("auth-int" if challenge.qop else None)
        ha2 = self._hash_a2(algorithm, qop, method, uri, body)
        nc = f"{answer.nonce_count:08x}"
        # RFC 7616 §3.4.1; without qop, the RFC 2069 form.
        middle = nonce if qop is None else f"{nonce}:{nc}:{cnonce}:{qop}"
        response = algorithm.hexdigest(f"{answer.ha1}:{middle}:{ha2}".encode())
        directives = [
            f"username={quote(answer.credentials.username)}",
            f"realm={quote(challenge.realm)}",
            f"nonce={quote(nonce)}",
            f"uri={quote(uri)}",
            f'response="{response}"',  # hex digits: nothing to escape
            f"algorithm={algorithm.value}",
        ]
        # A -sess A1 needs the cnonce even when the server offered no qop.
        if qop is not None or algorithm.session:
            directives.append(f"cnonce={quote(cnonce)}")
        if challenge.opaque is not None:
            directives.append(f"opaque={quote(challenge.opaque)}")
        if qop is not None:
            directives.extend((f"qop={qop}", f"nc={nc}"))
        return "Digest " + ", ".join(directives)

    def _hash_a1(self, algorithm: Algorithm, realm: str, credentials: Credentials) -> str:
        """H(A1) = ``H(username:realm:password)``, remembered (a realm's credentials are fixed)."""
        key = (algorithm.value, realm)
        ha1 = self._ha1.get(key)
        if ha1 is None:
            secret = f"{credentials.username}:{realm}:{credentials.password}"
            ha1 = self._ha1[key] = algorithm.hexdigest(secret.encode())
        return ha1

    def _hash_a2(
        self, algorithm: Algorithm, qop: str | None, method: str, uri: str, body: bytes
    ) -> str:
        """H(A2): ``H(method:uri)``, remembered; for qop=auth-int ``H(method:uri:H(body))``."""
        if qop == "auth-int":
            return algorithm.hexdigest(f"{method}:{uri}:{algorithm.hexdigest(body)}".encode())
        key = (algorithm.value, method, uri)
        ha2 = self._ha2.get(key)
        if ha2 is None:
            ha2 = self._ha2[key] = algorithm.hexdigest(f"{method}:{uri}".encode())
        return ha2

    def holds_answer(self, status: int, challenge_values: Sequence[str]) -> bool:
        """Whether every realm a 401/407 challenges has an answer held that a 2xx accepted.

        A request challenged before that answer was accepted may then go again with the nonce
        held (and its next nonce count) instead of a fresh answer.
        """
        proxy = status == 407
        try:
            realms = {
                challenge.realm
                for value in challenge_values
                for challenge in parse_challenges(value, proxy=proxy)
            }
        except RemoteProtocolError:
            return False
        accepted = (_AnswerState.ACCEPTED, _AnswerState.REUSED)
        return bool(realms) and all(
            (answer := self._answers.get((proxy, realm))) is not None and answer.state in accepted
            for realm in realms
        )

    def request_succeeded(self) -> None:
        """A 2xx arrived: the answers it carried are good and their nonces may be reused."""
        for answer in self._answers.values():
            if answer.state in (_AnswerState.SENT, _AnswerState.REUSED):
                answer.state = _AnswerState.ACCEPTED
                answer.after_stale = False

    def forget(self) -> None:
        """Drop every nonce held (e.g. the registrar changed); the next request goes bare."""
        self._answers.clear()


def mask_authorization(value: str) -> str:
    """An ``Authorization``-like value fit for logs: nonces and responses read ``"***"``.

    Schemes other than Digest keep only their name; a value that cannot be parsed is masked
    whole.
    """
    try:
        schemes = _split_schemes(value)
    except RemoteProtocolError:
        return "***"
    masked: list[str] = []
    for scheme, items in schemes:
        if scheme.lower() != "digest":
            masked.append(f"{scheme} ***")
            continue
        directives: list[str] = []
        for item in items:
            name, _, _ = item.partition("=")
            name = name.strip(WSP)
            directives.append(f"{name}={_MASK}" if name.lower() in _SECRET_DIRECTIVES else item)
        masked.append(" ".join((scheme, ", ".join(directives))).rstrip(WSP))
    return ", ".join(masked)


def _breaks_lines(text: str) -> bool:
    """Whether ``text`` holds a CR, LF or NUL, which would end or corrupt a header line."""
    return "\r" in text or "\n" in text or "\0" in text
