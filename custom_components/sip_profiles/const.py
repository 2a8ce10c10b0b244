"""Constants of the SIP Profiles integration."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "sip_profiles"
LOGGER = logging.getLogger(__package__)

# Config entry data: the account and where it registers.
CONF_AOR: Final = "aor"
CONF_AUTH_USER: Final = "auth_user"
CONF_REALM: Final = "realm"
CONF_REGISTRAR: Final = "registrar"
CONF_OUTBOUND_PROXY: Final = "outbound_proxy"
CONF_TRANSPORT: Final = "transport"
CONF_VERIFY_TLS: Final = "verify_tls"
CONF_ENABLED: Final = "enabled"
"""Whether the profile is kept registered (the switch and the enable/disable actions)."""
CONF_MASTER: Final = "master"
"""The entry id of the profile this one depends on (it registers only after its master)."""

# Options: how the registration is kept.
CONF_EXPIRES: Final = "expires"
CONF_KEEPALIVE: Final = "keepalive"

TRANSPORT_AUTO: Final = "auto"
TRANSPORTS: Final = (TRANSPORT_AUTO, "udp", "tcp", "tls")

DEFAULT_EXPIRES: Final = 3600
MIN_EXPIRES: Final = 60
MAX_EXPIRES: Final = 86400
DEFAULT_KEEPALIVE: Final = 30
"""Seconds between CRLF keep-alives (0 sends none)."""

SETUP_TIMEOUT: Final = 10.0
"""How long setup and the config flow wait for the first REGISTER to be answered."""
SHUTDOWN_TIMEOUT: Final = 3.0
"""How long unloading waits for the unregistration before it lets go."""

# Options: our own presence.
CONF_PUBLISH_PRESENCE: Final = "publish_presence"
"""Whether the profile publishes our presence (select and note) and watches who watches it."""
DEFAULT_PUBLISH_PRESENCE: Final = False

# Options: what the line tells.
CONF_SHOW_CALLS: Final = "show_calls"
"""Whether incoming calls ring (180, never answered) and are shown; else they get 480."""
DEFAULT_SHOW_CALLS: Final = False
CONF_VOICEMAIL_URI: Final = "voicemail_uri"
"""Where to subscribe to message-summary; the profile's own address when absent."""
MWI_PACKAGE: Final = "message-summary"

# Buddies: config subentries of a profile.
SUBENTRY_BUDDY: Final = "buddy"
CONF_BUDDY_URI: Final = "uri"
CONF_BUDDY_NAME: Final = "name"
CONF_WATCH: Final = "watch"
WATCH_PRESENCE: Final = "presence"
"""Watch a buddy's presence (event package ``presence``)."""
WATCH_DIALOG: Final = "dialog"
"""Watch a buddy's calls, the busy lamp (event package ``dialog``)."""
WATCHES: Final = (WATCH_PRESENCE, WATCH_DIALOG)
WATCHER_INFO_PACKAGE: Final = "presence.winfo"
