"""The development server behind scripts/develop: the demo SIP server and Home Assistant.

Prepares ``config/`` (kept if it exists): a configuration.yaml that loads the frontend, the
stored HTTP settings pinned to 127.0.0.1 (so Home Assistant never falls back to listening on
every interface), onboarding marked done except for the owner account, and a link
``config/custom_components/sip_profiles`` to the working tree. Then starts the demo Kamailio and
``hass -c config``, creates the development owner account on the first run, prints how to log in
and which SIP accounts to use, and stops both on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import signal
import subprocess
import sys
import time

from tests.harness.hass import (
    BASE_INTEGRATIONS,
    OWNER,
    OWNER_PASSWORD,
    HassClient,
    HassError,
    HassProcess,
    configuration_yaml,
    prepare_config,
    start_process,
    stop_process,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION_YAML = configuration_yaml(
    "sip_profiles development",
    integrations=(*BASE_INTEGRATIONS, "history", "logbook"),
    logs={"custom_components.sip_profiles": "debug"},
)


def log(message: str) -> None:
    """Print a progress line."""
    print(f"\033[1m[develop]\033[0m {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run until Ctrl-C or SIGTERM; return non-zero if something could not start."""
    parser = argparse.ArgumentParser(prog="scripts/develop", description=__doc__)
    parser.add_argument("--config", default=str(ROOT / "config"), help="Home Assistant config dir")
    parser.add_argument("--http-port", type=int, default=8123, help="for a fresh config dir")
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds to wait for HTTP")
    args = parser.parse_args(argv)

    config = Path(args.config).resolve()
    state = ROOT / ".develop"
    state.mkdir(exist_ok=True)
    port = prepare_config(config, args.http_port, CONFIGURATION_YAML, log=log)
    hass = HassProcess(config, port)

    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    sip: subprocess.Popen[bytes] | None = None
    info_file = state / "kamailio.json"
    try:
        info_file.unlink(missing_ok=True)
        log("starting the demo SIP server")
        sip = start_process(
            [
                sys.executable,
                "-m",
                "tests.harness.kamailio",
                "--demo",
                "--state-dir",
                str(state / "kamailio"),
                "--info",
                str(info_file),
            ],
            state / "kamailio.out",
        )
        deadline = time.monotonic() + 30
        while not info_file.exists() and sip.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if not info_file.exists():
            log(f"the demo SIP server did not start; see {state / 'kamailio.out'}")
            return 1
        sip_info = json.loads(info_file.read_text(encoding="utf-8"))

        log(f"starting Home Assistant (log: {hass.log_file})")
        hass.start()
        started = time.monotonic()
        if not hass.wait_for_http(args.start_timeout):
            if not stopping:
                log(f"Home Assistant did not answer at {hass.base}; see {hass.log_file}")
            return 1
        log(f"Home Assistant answered after {time.monotonic() - started:.1f} s")
        client = HassClient(hass.base)
        listed: bool | None = None
        try:
            client.login()
            listed = "sip_profiles" in client.flow_handlers()
        except HassError as err:
            log(f"could not log in as {OWNER!r}: {err}")

        lines = [
            "",
            f"Home Assistant: {hass.base}",
            f"  log in as {OWNER} / {OWNER_PASSWORD}"
            if client.token
            else "  log in with your own account",
            "  sip_profiles in Add integration: "
            + {True: "yes", False: "not listed", None: "unknown"}[listed],
            f"Demo SIP server (domain {sip_info['domain']}, log {sip_info['log_file']}):",
            f"  registrar {sip_info['host']}:{sip_info['port']} over UDP or TCP,"
            f" TLS on port {sip_info['tls_port']} (CA {sip_info['ca_file']})",
        ]
        for user, password in sip_info["accounts"].items():
            extra = "  (presence published)" if user in sip_info["presence"] else ""
            lines.append(f"  sip:{user}@{sip_info['domain']}  password {password}{extra}")
        lines += ["Stop everything with Ctrl-C.", ""]
        print("\n".join(lines), flush=True)

        while not stopping:
            if not hass.running:
                log("Home Assistant exited")
                return 1
            if sip.poll() is not None:
                log(f"the demo SIP server exited ({sip.returncode})")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("stopping")
        hass.stop(log=log)
        stop_process(sip, log=log, name="the demo SIP server")


if __name__ == "__main__":
    sys.exit(main())
