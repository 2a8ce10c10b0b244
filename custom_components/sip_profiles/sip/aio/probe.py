"""Check a SIP account from the command line, outside Home Assistant.

    scripts/probe register sip:alice@example.com --password-env SIP_PASSWORD --hold 120
    scripts/probe query alice@example.com --password-file ~/.sip-password
    scripts/probe unregister-all sip:alice@example.com --transport tls
    scripts/probe watch sip:alice@example.com sip:bob@example.com --event dialog --hold 60
    scripts/probe publish sip:alice@example.com --presence busy --note "In a meeting"

Every state change and (unless ``--quiet``) every SIP message in both directions is printed,
with credentials masked. The password is never taken as an argument, where it would land in
the shell history and in ``ps``: it comes from an environment variable, a file or a prompt.

Exit status: 0 success, 2 bad usage, 3 credentials refused (401/403), 4 server unreachable (DNS,
connection, TLS, no answer), 5 request rejected (404, 5xx, other errors), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
import contextlib
from dataclasses import dataclass
from datetime import datetime
import enum
import getpass
import os
from pathlib import Path
import signal
import ssl
import sys
from typing import TextIO

import aiodns

from ..auth import Credentials
from ..documents.pidf import MyPresence
from ..errors import LocalProtocolError, RemoteProtocolError
from ..publication import PublicationChanged, PublicationState
from ..registration import (
    AllBindingsRemoved,
    BindingsListed,
    FailureReason,
    OperationFailed,
    RegistrationChanged,
    RegistrationState,
    RegistrationStatus,
)
from ..subscription import (
    NotifyReceived,
    SubscriptionChanged,
    SubscriptionState,
)
from ..target import Target, Transport
from ..trace import masked_text
from ..uri import SipUri, parse_sip_uri
from ..useragent import ConnectionNeeded, MessageDropped, UserAgentEvent, UserAgentSettings
from .resolver import LocationError
from .runner import UserAgentRunner, server_uri, start_user_agent
from .tls import client_ssl_context

PROG = "probe"
DEFAULT_TIMEOUT = 10.0
DEFAULT_EXPIRES = 600


class ExitCode(enum.IntEnum):
    """The probe's exit status; scripts may branch on it."""

    OK = 0
    USAGE = 2
    AUTH_FAILED = 3
    UNREACHABLE = 4
    REJECTED = 5
    INTERRUPTED = 130


_EXIT_CODES = {
    FailureReason.AUTH_FAILED: ExitCode.AUTH_FAILED,
    FailureReason.FORBIDDEN: ExitCode.AUTH_FAILED,
    FailureReason.TIMEOUT: ExitCode.UNREACHABLE,
    FailureReason.TRANSPORT_ERROR: ExitCode.UNREACHABLE,
    FailureReason.NOT_FOUND: ExitCode.REJECTED,
    FailureReason.SERVER_ERROR: ExitCode.REJECTED,
    FailureReason.REJECTED: ExitCode.REJECTED,
    FailureReason.NOT_OFFERED: ExitCode.REJECTED,
}
_FAILURE_TEXT = {
    FailureReason.AUTH_FAILED: "the credentials were refused",
    FailureReason.FORBIDDEN: "forbidden (wrong password, user name or realm?)",
    FailureReason.TIMEOUT: "no answer from the server",
    FailureReason.TRANSPORT_ERROR: "the connection to the server failed",
    FailureReason.NOT_FOUND: "the server does not know this address of record",
    FailureReason.SERVER_ERROR: "the server reported an error",
    FailureReason.REJECTED: "the server rejected the request",
    FailureReason.NOT_OFFERED: "the server does not offer this event package",
}


class ProbeError(Exception):
    """An expected failure, told to the user in one line and ended with ``code``."""

    def __init__(self, message: str, code: ExitCode) -> None:
        """Keep the one-line ``message`` and the exit ``code``."""
        super().__init__(message)
        self.code = code


def failure_code(reason: FailureReason | None) -> ExitCode:
    """The exit status for a failure ``reason`` (None: success)."""
    return ExitCode.OK if reason is None else _EXIT_CODES[reason]


def _answer(code: int | None, phrase: str | None) -> str:
    return " ".join(part for part in (str(code) if code else None, phrase) if part)


class Console:
    """What the probe prints: state changes, bindings and, unless quiet, every message."""

    def __init__(self, out: TextIO, *, quiet: bool, clock: Callable[[], float]) -> None:
        """Print to ``out``; ``clock`` is the user agent's (for "refresh in" times)."""
        self._out = out
        self._quiet = quiet
        self._clock = clock

    def say(self, text: str) -> None:
        """One time-stamped line."""
        stamp = datetime.now().strftime("%H:%M:%S.%f")[:-3]
        print(f"{stamp}  {text}", file=self._out, flush=True)

    def trace(self, direction: str, peer: Target, data: bytes) -> None:
        """A message sent (``out``) or received (``in``)."""
        if self._quiet:
            return
        arrow = f"sent to {peer}" if direction == "out" else f"received from {peer}"
        if not data.strip():
            self.say(f"keep-alive {arrow}")
            return
        self.say(f"{arrow} ({len(data)} bytes)")
        print(masked_text(data).replace("\r\n", "\n"), end="\n\n", file=self._out, flush=True)

    def event(self, event: UserAgentEvent) -> None:
        """A user agent event, as far as a user wants to see it."""
        match event:
            case RegistrationChanged(status=status):
                self.say(f"state  {self.describe(status)}")
            case BindingsListed(bindings=bindings):
                self.say(f"{len(bindings)} binding(s)")
                for binding in bindings:
                    details = [f"expires in {binding.expires} s"] if binding.expires else []
                    details += [f"q={binding.q}"] if binding.q is not None else []
                    details += ["this probe"] if binding.ours else []
                    line = f"    {binding.contact}  ({', '.join(details)})"
                    print(line, file=self._out, flush=True)
            case AllBindingsRemoved(count=count):
                self.say(f"removed {count} binding(s)")
            case OperationFailed(operation=operation, reason=reason, status_code=code):
                self.say(f"{operation} failed: {reason} {_answer(code, None)}".rstrip())
            case SubscriptionChanged(key=watched, status=subscription):
                because = f" ({subscription.reason})" if subscription.reason else ""
                answer = f"  [{subscription.status_code}]" if subscription.status_code else ""
                self.say(
                    f"{watched.package} of {watched.uri}  {subscription.state.value}"
                    f"{because}{answer}"
                )
            case NotifyReceived(key=watched, content_type=content_type, body=body):
                self.say(f"{watched.package} of {watched.uri}: {len(body)} bytes of {content_type}")
            case PublicationChanged(status=publication):
                because = f" ({publication.reason})" if publication.reason else ""
                self.say(f"publication  {publication.state.value}{because}")
            case ConnectionNeeded(target=target):
                self.say(f"opening a new flow to {target}")
            case MessageDropped(source=source, error=error):
                self.say(f"dropped a malformed message from {source}: {error}")

    def describe(self, status: RegistrationStatus) -> str:
        """State, reason, answer and granted expiry of a registration status."""
        words = [status.state.value]
        if status.reason is not None:
            words.append(f"({status.reason})")
        details = [_answer(status.status_code, status.reason_phrase)]
        if status.state is RegistrationState.REGISTERED and status.expires is not None:
            details.append(f"expires {status.expires} s")
            if status.refresh_at is not None:
                details.append(f"refresh in {status.refresh_at - self._clock():.0f} s")
        if status.retry_at is not None:
            details.append(f"retry in {status.retry_at - self._clock():.0f} s")
        shown = [detail for detail in details if detail]
        return " ".join(words) + (f"  [{'; '.join(shown)}]" if shown else "")


# -- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """What the command line asked for, read and checked before the event loop starts."""

    settings: UserAgentSettings
    ssl_context: ssl.SSLContext
    nameserver: str | None
    timeout: float
    quiet: bool


def _sip_uri(text: str, what: str) -> SipUri:
    candidate = text if ":" in text.split("@", 1)[0] else f"sip:{text}"
    try:
        return parse_sip_uri(candidate)
    except RemoteProtocolError:
        raise ProbeError(f"{what} {text!r} is not a SIP URI", ExitCode.USAGE) from None


def read_password(args: argparse.Namespace, username: str) -> str:
    """The password from ``--password-env``, ``--password-file`` or an interactive prompt."""
    if args.password_env is not None:
        password = os.environ.get(args.password_env)
        if password is None:
            raise ProbeError(f"environment variable {args.password_env} is not set", ExitCode.USAGE)
        return password
    if args.password_file is not None:
        try:
            text = Path(args.password_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ProbeError(f"cannot read the password file: {err}", ExitCode.USAGE) from None
        return text.splitlines()[0] if text else ""
    try:
        return getpass.getpass(f"Password for {username}: ")
    except EOFError:
        raise ProbeError(
            "no password: give --password-env or --password-file when not at a terminal",
            ExitCode.USAGE,
        ) from None


def configure(args: argparse.Namespace) -> ProbeConfig:
    """Settings, TLS context and credentials from the parsed command line (may prompt)."""
    aor = _sip_uri(args.aor, "address of record")
    username = args.user or aor.user
    if not username:
        raise ProbeError(f"{args.aor} names no user: give --user", ExitCode.USAGE)
    try:
        credentials = Credentials(username, read_password(args, username), args.realm)
        settings = UserAgentSettings(
            aor=aor,
            credentials=(credentials,),
            transport=Transport(args.transport) if args.transport else None,
            registrar=_sip_uri(args.registrar, "registrar") if args.registrar else None,
            outbound_proxy=_sip_uri(args.proxy, "proxy") if args.proxy else None,
            expires=args.expires,
        )
    except LocalProtocolError as err:
        raise ProbeError(str(err), ExitCode.USAGE) from None
    try:
        ssl_context = client_ssl_context(verify=not args.insecure, ca_file=args.ca_file)
    except (OSError, ssl.SSLError) as err:
        raise ProbeError(f"cannot use CA file {args.ca_file}: {err}", ExitCode.USAGE) from None
    return ProbeConfig(settings, ssl_context, args.dns, args.timeout, args.quiet)


# -- a running probe ----------------------------------------------------------------------------


def _unreachable(server: str, err: OSError | ssl.SSLError) -> ProbeError:
    """One line saying why no flow to ``server`` could be opened."""
    if isinstance(err, LocationError):
        message = str(err)
    elif isinstance(err, ssl.SSLCertVerificationError):
        message = (
            f"TLS: the certificate of {server} is not trusted ({err.verify_message});"
            " give --ca-file, or --insecure to skip the check"
        )
    elif isinstance(err, ssl.SSLError):
        message = f"TLS handshake with {server} failed: {err.reason or err}"
    elif isinstance(err, TimeoutError):
        message = f"no connection to {server} in time"
    else:
        # asyncio words a refused connection as "Connect call failed"; the errno says why.
        message = f"cannot reach {server}: {os.strerror(err.errno) if err.errno else err}"
    return ProbeError(message, ExitCode.UNREACHABLE)


class ProbeSession:
    """One user agent started for a subcommand: its events to wait on, its output printed."""

    def __init__(self, runner: UserAgentRunner, config: ProbeConfig, console: Console) -> None:
        """Use ``open()``."""
        self.runner = runner
        self.config = config
        self.console = console
        self.interrupted = False
        self._events: asyncio.Queue[UserAgentEvent | None] = asyncio.Queue()
        runner.add_listener(self._on_event)
        runner.add_tracer(console.trace)

    @classmethod
    async def open(cls, config: ProbeConfig, out: TextIO) -> ProbeSession:
        """Locate the server and open a flow to it; raises ProbeError when that fails."""
        settings = config.settings
        server = str(server_uri(settings))
        resolver = (
            aiodns.DNSResolver(nameservers=[config.nameserver], timeout=config.timeout / 4)
            if config.nameserver
            else None
        )
        try:
            async with asyncio.timeout(config.timeout):
                runner = await start_user_agent(
                    settings,
                    resolver=resolver,
                    ssl_context=config.ssl_context,
                    connect_timeout=config.timeout,
                )
        except TimeoutError:
            raise ProbeError(
                f"no server for {server} reached within {config.timeout:g} s",
                ExitCode.UNREACHABLE,
            ) from None
        except (OSError, ssl.SSLError) as err:
            raise _unreachable(server, err) from None
        except LocalProtocolError as err:
            raise ProbeError(str(err), ExitCode.USAGE) from None
        finally:
            if resolver is not None:
                await resolver.close()
        console = Console(out, quiet=config.quiet, clock=runner.now)
        session = cls(runner, config, console)
        console.say(f"{settings.aor} via {runner.user_agent.target}")
        return session

    def _on_event(self, event: UserAgentEvent) -> None:
        self.console.event(event)
        self._events.put_nowait(event)

    def interrupt(self) -> None:
        """Ctrl-C: end the current wait (a hold ends, and the unregistration still runs)."""
        self._events.put_nowait(None)

    async def wait_for(
        self, wanted: Callable[[UserAgentEvent], bool], seconds: float
    ) -> UserAgentEvent | None:
        """The next event ``wanted`` accepts; None after ``seconds`` or when interrupted."""
        self.interrupted = False
        try:
            async with asyncio.timeout(seconds):
                while (event := await self._events.get()) is not None:
                    if wanted(event):
                        return event
                self.interrupted = True
        except TimeoutError:
            pass
        return None

    @property
    def status(self) -> RegistrationStatus:
        """The registration's current status."""
        return self.runner.user_agent.registration.status

    def no_answer(self, what: str) -> ProbeError:
        """The error for an interrupted wait or one that timed out."""
        if self.interrupted:
            return ProbeError(f"interrupted while waiting for {what}", ExitCode.INTERRUPTED)
        return ProbeError(
            f"no answer to the {what} from {self.runner.user_agent.target}"
            f" within {self.config.timeout:g} s",
            ExitCode.UNREACHABLE,
        )

    async def settle_registration(self, what: str) -> RegistrationStatus:
        """Wait until the registration is up or failed; raise ProbeError unless it is up."""
        settled = await self.wait_for(_registration_settled, self.config.timeout)
        if not isinstance(settled, RegistrationChanged):
            raise self.no_answer(what)
        status = settled.status
        if status.state is RegistrationState.FAILED:
            raise self.failure(what, status.reason, status.status_code, status.reason_phrase)
        return status

    def failure(
        self,
        what: str,
        reason: FailureReason | None,
        status_code: int | None,
        phrase: str | None = None,
    ) -> ProbeError:
        """The one-line error for a failed operation."""
        text = _FAILURE_TEXT[reason] if reason is not None else "failed"
        answer = _answer(status_code, phrase)
        return ProbeError(
            f"{what} of {self.config.settings.aor} failed: {text}"
            + (f" ({answer})" if answer else ""),
            failure_code(reason),
        )

    async def unregister(self) -> ExitCode:
        """Remove the probe's binding and wait for the registrar's answer."""
        self.runner.unregister()
        done = await self.wait_for(
            lambda event: (
                isinstance(event, RegistrationChanged)
                and event.status.state is RegistrationState.UNREGISTERED
            ),
            self.config.timeout,
        )
        if not isinstance(done, RegistrationChanged):
            raise self.no_answer("unregistration")
        status = done.status
        if status.reason is not None:
            raise self.failure(
                "unregistration", status.reason, status.status_code, status.reason_phrase
            )
        return ExitCode.OK

    async def close(self) -> None:
        """Remove a binding still up (briefly) and close the flows."""
        pending = self.status.state in (RegistrationState.REGISTERED, RegistrationState.REGISTERING)
        await self.runner.stop(unregister=pending, unregister_timeout=self.config.timeout)


def _registration_settled(event: UserAgentEvent) -> bool:
    return isinstance(event, RegistrationChanged) and event.status.state in (
        RegistrationState.REGISTERED,
        RegistrationState.FAILED,
    )


# -- subcommands --------------------------------------------------------------------------------

_AUTH_REASONS = frozenset({"auth_failed", "forbidden"})
_UNREACHABLE_REASONS = frozenset({"timeout", "transport_error"})


def _reason_code(reason: FailureReason | None) -> ExitCode:
    if reason in _AUTH_REASONS:
        return ExitCode.AUTH_FAILED
    return ExitCode.UNREACHABLE if reason in _UNREACHABLE_REASONS else ExitCode.REJECTED


async def _register(session: ProbeSession, args: argparse.Namespace) -> ExitCode:
    session.runner.register()
    await session.settle_registration("registration")
    if args.hold > 0:
        session.console.say(f"holding the registration for {args.hold:g} s (Ctrl-C ends it)")
        # Refreshes and failures are printed as they happen; only the end of the hold counts.
        await session.wait_for(lambda _: False, args.hold)
        status = session.status
        if status.state is RegistrationState.FAILED:
            raise session.failure(
                "refresh", status.reason, status.status_code, status.reason_phrase
            )
    return await session.unregister()


async def _unregister(session: ProbeSession, _args: argparse.Namespace) -> ExitCode:
    # A new probe has no binding of its own: it makes one (and learns the digest nonce), then
    # removes it, which tests that the registrar accepts a de-registration from this account.
    session.runner.register()
    await session.settle_registration("registration")
    return await session.unregister()


async def _query(session: ProbeSession, _args: argparse.Namespace) -> ExitCode:
    session.runner.query_bindings()
    answer = await session.wait_for(
        lambda event: isinstance(event, BindingsListed | OperationFailed), session.config.timeout
    )
    if isinstance(answer, OperationFailed):
        raise session.failure("query", answer.reason, answer.status_code)
    if answer is None:
        raise session.no_answer("query")
    return ExitCode.OK


async def _unregister_all(session: ProbeSession, _args: argparse.Namespace) -> ExitCode:
    session.runner.unregister_all()
    answer = await session.wait_for(
        lambda event: isinstance(event, AllBindingsRemoved | OperationFailed),
        session.config.timeout,
    )
    if isinstance(answer, OperationFailed):
        raise session.failure("removal of all bindings", answer.reason, answer.status_code)
    if answer is None:
        raise session.no_answer("removal of all bindings")
    return ExitCode.OK


async def _watch(session: ProbeSession, args: argparse.Namespace) -> ExitCode:
    key = session.runner.subscribe(_sip_uri(args.uri, "watched URI"), args.event)
    user_agent = session.runner.user_agent

    def state() -> SubscriptionState | None:
        status = user_agent.subscription_status(key)
        return status.state if status is not None else None

    settled = (SubscriptionState.ACTIVE, SubscriptionState.PENDING, SubscriptionState.FAILED)
    await session.wait_for(lambda _: state() in settled, session.config.timeout)
    status = user_agent.subscription_status(key)
    if status is None or status.state not in settled:
        raise session.no_answer("SUBSCRIBE")
    if status.state is SubscriptionState.FAILED:
        raise ProbeError(
            f"subscription to {key.package} of {key.uri} failed: {status.reason}"
            + (f" ({status.status_code})" if status.status_code else ""),
            _reason_code(status.reason),
        )
    if args.hold > 0:
        session.console.say(f"watching for {args.hold:g} s (Ctrl-C ends it)")
        await session.wait_for(lambda _: False, args.hold)
    session.runner.unsubscribe(key)
    await session.wait_for(
        lambda _: state() is SubscriptionState.UNSUBSCRIBED, session.config.timeout
    )
    return ExitCode.OK


async def _publish(session: ProbeSession, args: argparse.Namespace) -> ExitCode:
    publication = session.runner.user_agent.publication
    try:
        session.runner.publish(MyPresence(args.presence), args.note)
    except LocalProtocolError as err:
        raise ProbeError(str(err), ExitCode.USAGE) from None
    settled = (PublicationState.PUBLISHED, PublicationState.FAILED)
    await session.wait_for(lambda _: publication.state in settled, session.config.timeout)
    status = publication.status
    if status.state is PublicationState.FAILED:
        raise ProbeError(
            f"publication failed: {status.reason}"
            + (f" ({status.status_code})" if status.status_code else ""),
            _reason_code(status.reason),
        )
    if status.state is not PublicationState.PUBLISHED:
        raise session.no_answer("PUBLISH")
    if args.hold > 0:
        session.console.say(f"keeping it published for {args.hold:g} s (Ctrl-C ends it)")
        await session.wait_for(lambda _: False, args.hold)
    session.runner.unpublish()
    await session.wait_for(
        lambda _: publication.state is PublicationState.UNPUBLISHED, session.config.timeout
    )
    return ExitCode.OK


def _watch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("uri", metavar="URI", help="the address to watch, e.g. sip:bob@example.com")
    parser.add_argument(
        "--event",
        choices=["presence", "dialog", "presence.winfo"],
        default="presence",
        help="event package (default presence)",
    )
    _hold_argument(parser)


def _publish_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--presence",
        choices=[p.value for p in MyPresence],
        default=MyPresence.AVAILABLE.value,
        help="the presence to publish (default available)",
    )
    parser.add_argument("--note", help="a note to publish with it")
    _hold_argument(parser)


@dataclass(frozen=True, slots=True)
class Command:
    """A subcommand: its help line, its own options and what it does with a session."""

    help: str
    run: Callable[[ProbeSession, argparse.Namespace], Awaitable[ExitCode]]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None


def _hold_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hold",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep it up (refreshing it) this long before ending it",
    )


COMMANDS: dict[str, Command] = {
    "register": Command(
        "register, optionally hold the registration, then unregister", _register, _hold_argument
    ),
    "query": Command("list the contacts bound to the address of record", _query),
    "unregister": Command("register, then remove the probe's binding at once", _unregister),
    "unregister-all": Command("remove every binding of the address of record", _unregister_all),
    "watch": Command(
        "subscribe to URI's presence or dialogs, optionally hold, then unsubscribe",
        _watch,
        _watch_arguments,
    ),
    "publish": Command(
        "publish our presence, optionally hold it, then remove it", _publish, _publish_arguments
    ),
}


def account_arguments() -> argparse.ArgumentParser:
    """The options every subcommand shares: the account, the server and the output."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("aor", metavar="AOR", help="address of record, e.g. sip:alice@example.com")
    password = parser.add_mutually_exclusive_group()
    password.add_argument("--password-env", metavar="VAR", help="read the password from $VAR")
    password.add_argument(
        "--password-file", metavar="FILE", help="read the password from FILE's first line"
    )
    parser.add_argument("--user", help="authentication user name (default: the AOR's user)")
    parser.add_argument("--realm", help="answer only challenges of this realm")
    parser.add_argument("--registrar", metavar="URI", help="Request-URI of REGISTER")
    parser.add_argument("--proxy", metavar="URI", help="outbound proxy (sent as a loose Route)")
    parser.add_argument(
        "--transport", choices=[t.value for t in Transport], help="default: DNS (RFC 3263)"
    )
    parser.add_argument(
        "--expires",
        type=int,
        default=DEFAULT_EXPIRES,
        metavar="N",
        help=f"registration expiry asked for, in seconds (default {DEFAULT_EXPIRES})",
    )
    parser.add_argument("--ca-file", metavar="FILE", help="extra trusted CA certificates (PEM)")
    parser.add_argument("--insecure", action="store_true", help="accept any TLS certificate")
    parser.add_argument("--dns", metavar="HOST:PORT", help="ask this name server")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"wait this long for a connection or an answer (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print SIP messages")
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The probe's command line: one subcommand per entry of COMMANDS."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check a SIP account: register, list or remove its bindings, watch and"
        " publish presence.",
        epilog="Without --password-env or --password-file the password is asked for. "
        "Exit status: 0 ok, 2 usage, 3 credentials refused, 4 unreachable or no answer, "
        "5 rejected, 130 interrupted.",
    )
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = account_arguments()
    for name, command in COMMANDS.items():
        # No abbreviations: "--password" must not quietly mean "--password-env".
        sub = subcommands.add_parser(name, parents=[shared], help=command.help, allow_abbrev=False)
        if command.add_arguments is not None:
            command.add_arguments(sub)
    return parser


async def run(config: ProbeConfig, command: Command, args: argparse.Namespace) -> ExitCode:
    """Run ``command`` on a new session; Ctrl-C (SIGINT) or SIGTERM ends it cleanly."""
    session = await ProbeSession.open(config, sys.stdout)
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Not available on every platform or outside the main thread: Ctrl-C then aborts.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, session.interrupt)
            handled.append(signum)
    try:
        return await command.run(session, args)
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        await session.close()


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the subcommand and return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        config = configure(args)
        return asyncio.run(run(config, COMMANDS[args.command], args))
    except ProbeError as err:
        print(f"{PROG}: {err}", file=sys.stderr, flush=True)
        return err.code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
