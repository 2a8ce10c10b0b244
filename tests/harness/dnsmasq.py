"""A throw-away dnsmasq serving chosen DNS records on a free loopback port.

Records are dnsmasq configuration lines made by ``naptr``, ``srv`` and ``host``. Names under
the local domains (``.test`` by default) that have no record answer NXDOMAIN; anything else is
refused, since the server never asks anyone upstream.
"""

from __future__ import annotations

from collections.abc import Iterable
import grp
import os
from pathlib import Path
import pwd
import random
import select
import shutil
import signal
import subprocess

DNSMASQ = shutil.which("dnsmasq") or shutil.which("dnsmasq", path="/usr/sbin:/sbin")
"""The dnsmasq executable, or None when it is not installed."""

_START_ATTEMPTS = 8


def naptr(name: str, order: int, preference: int, service: str, replacement: str) -> str:
    """A NAPTR record with flag "S" pointing at the SRV name ``replacement``."""
    return f'naptr-record={name},{order},{preference},"S","{service}","",{replacement}'


def srv(name: str, target: str, port: int, priority: int = 10, weight: int = 0) -> str:
    """An SRV record at ``name`` (like ``_sip._udp.example.test``)."""
    return f"srv-host={name},{target},{port},{priority},{weight}"


def host(name: str, *addresses: str) -> str:
    """A and AAAA records of ``name``."""
    return f"host-record={name},{','.join(addresses)}"


class Dnsmasq:
    """One dnsmasq daemon; ``start`` (again) serves a new set of records."""

    def __init__(self, directory: Path, *, local_domains: Iterable[str] = ("test",)) -> None:
        """Keep configuration, pid file and log in ``directory``."""
        if DNSMASQ is None:
            raise FileNotFoundError("dnsmasq is not installed")
        self._executable = DNSMASQ
        self._directory = directory
        self._local_domains = tuple(local_domains)
        self._pid: int | None = None
        self.port = 0

    @property
    def nameserver(self) -> str:
        """The server as aiodns takes it: ``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def start(self, records: Iterable[str]) -> None:
        """Serve ``records``, replacing a running server; returns once it answers queries.

        dnsmasq detaches only after binding its sockets and reports a failure (a port taken
        meanwhile) through its exit status, so a busy port just means another try.
        """
        self.stop()
        records = list(records)
        errors: list[str] = []
        for _ in range(_START_ATTEMPTS):
            port = random.randint(20000, 60000)
            config = self._write_config(port, records)
            pid_file = self._directory / "dnsmasq.pid"
            pid_file.unlink(missing_ok=True)
            done = subprocess.run(
                [self._executable, "-C", str(config), "-x", str(pid_file)],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            if done.returncode == 0:
                self.port = port
                self._pid = int(pid_file.read_text().strip())
                return
            errors.append(done.stderr.strip())
        raise RuntimeError(f"dnsmasq did not start: {errors}")

    def stop(self) -> None:
        """Stop the server and wait (bounded) until it has exited."""
        if self._pid is None:
            return
        pid, self._pid = self._pid, None
        try:
            handle = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            os.kill(pid, signal.SIGTERM)
            select.select([handle], [], [], 5)
        finally:
            os.close(handle)

    def __enter__(self) -> Dnsmasq:
        """Use as a context manager that stops the server on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server."""
        self.stop()

    def _write_config(self, port: int, records: list[str]) -> Path:
        config = self._directory / "dnsmasq.conf"
        lines = [
            "no-resolv",
            "no-hosts",
            "bind-interfaces",
            "listen-address=127.0.0.1",
            f"port={port}",
            f"user={pwd.getpwuid(os.getuid()).pw_name}",
            f"group={grp.getgrgid(os.getgid()).gr_name}",
            f"log-facility={self._directory / 'dnsmasq.log'}",
            *(f"local=/{domain}/" for domain in self._local_domains),
            *records,
        ]
        config.write_text("\n".join(lines) + "\n")
        return config
