"""Config flow of SIP Profiles: add a profile by hand or from a provisioning document.

Every way in proves the profile live before anything is stored: one real REGISTER, then the
binding is removed again (``profile.async_check_profile``). Failures become translated form
errors.

Where things live:

- ``data``: the account and where it registers (``aor``, ``password``, ``auth_user``, ``realm``,
  ``registrar``, ``outbound_proxy``, ``transport``, ``verify_tls`` and, for a dependent profile,
  ``master``); the form's "advanced" section is flattened into it.
- ``options``: how the registration is kept (``expires``, ``keepalive``). The first step asks
  for the expiry too, but stores it in the options from the start, so the options flow is the
  one place to change it.
- ``unique_id``: the normalized address of record and registrar, ``sip:alice@example.com|host:port``
  (the registrar part is empty when the server is located from the address by RFC 3263).

A provisioning document that names the user, its password and a server is proven live at once
and becomes an entry without another form; when its password is missing or the proof fails,
the user form opens filled with the document's values (and the error) for review.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, override

from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
)
from homeassistant.const import CONF_PASSWORD
from homeassistant.core import callback
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio as vol

from .buddy_flow import BuddySubentryFlow
from .const import (
    CONF_AOR,
    CONF_AUTH_USER,
    CONF_EXPIRES,
    CONF_KEEPALIVE,
    CONF_MASTER,
    CONF_OUTBOUND_PROXY,
    CONF_PUBLISH_PRESENCE,
    CONF_REALM,
    CONF_REGISTRAR,
    CONF_SHOW_CALLS,
    CONF_TRANSPORT,
    CONF_VERIFY_TLS,
    CONF_VOICEMAIL_URI,
    DEFAULT_EXPIRES,
    DEFAULT_KEEPALIVE,
    DEFAULT_PUBLISH_PRESENCE,
    DEFAULT_SHOW_CALLS,
    DOMAIN,
    LOGGER,
    MAX_EXPIRES,
    MIN_EXPIRES,
    SUBENTRY_BUDDY,
    TRANSPORT_AUTO,
    TRANSPORTS,
)
from .coordinator import SipProfileConfigEntry
from .profile import (
    InvalidAddressError,
    ProfileError,
    async_check_profile,
    parse_address,
    parse_server,
)
from .sip.documents.provisioning import (
    ProvisioningDocument,
    ProvisioningError,
    parse_provisioning,
)

SECTION_ADVANCED = "advanced"
CONF_DOCUMENT = "document"
STEP_MANUAL = "manual"
STEP_PROVISIONING = "provisioning"
MAX_KEEPALIVE = 3600

CHECK_ERRORS = frozenset(
    {
        "invalid_address",
        "cannot_connect",
        "tls_untrusted",
        "timeout",
        "invalid_auth",
        "forbidden",
        "unknown_account",
        "rejected",
    }
)
"""The ``ProfileError`` keys the forms translate; anything else shows as ``unknown``."""

ADVANCED_FIELDS = (
    CONF_AUTH_USER,
    CONF_REALM,
    CONF_REGISTRAR,
    CONF_OUTBOUND_PROXY,
    CONF_TRANSPORT,
    CONF_EXPIRES,
    CONF_VERIFY_TLS,
    CONF_MASTER,
)

TEXT = TextSelector()
PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))
TRANSPORT_SELECTOR = SelectSelector(
    SelectSelectorConfig(
        options=list(TRANSPORTS),
        translation_key=CONF_TRANSPORT,
        mode=SelectSelectorMode.DROPDOWN,
    )
)
OPTIONS_EXPIRES = vol.All(
    # The options form's expiry, checked before the selector, whose own message ("Value 30.0
    # is too small") is not translated; the frontend looks this message up as an error key.
    vol.Range(min=MIN_EXPIRES, max=MAX_EXPIRES, msg="expires_out_of_range"),
    NumberSelector(
        NumberSelectorConfig(
            min=MIN_EXPIRES,
            max=MAX_EXPIRES,
            step=1,
            mode=NumberSelectorMode.BOX,
            unit_of_measurement="s",
        )
    ),
)
EXPIRES_LIMITS = {"min_expires": str(MIN_EXPIRES), "max_expires": str(MAX_EXPIRES)}
"""Placeholders of the expiry's help text and error."""
EXPIRES_IN_SECTION = NumberSelector(
    NumberSelectorConfig(step=1, mode=NumberSelectorMode.BOX, unit_of_measurement="s")
)
"""The expiry inside the user form's section, where Home Assistant reports a field's error only
as untranslated text: the step checks the limits and shows its own translated error."""
KEEPALIVE_SELECTOR = NumberSelector(
    NumberSelectorConfig(
        min=0, max=MAX_KEEPALIVE, step=1, mode=NumberSelectorMode.BOX, unit_of_measurement="s"
    )
)
PROVISIONING_SCHEMA = vol.Schema(
    {vol.Required(CONF_DOCUMENT): TextSelector(TextSelectorConfig(multiline=True))}
)


def normalized_aor(text: str) -> str:
    """``scheme:user@host[:port]`` with the host in lower case; raises InvalidAddressError."""
    uri = parse_address(text)
    return f"{uri.scheme.lower()}:{uri.user}@{uri.host_port.lower()}"


def normalized_server(text: str | None) -> str:
    """``host[:port]`` in lower case, or "" for none; raises InvalidAddressError."""
    uri = parse_server(text)
    return "" if uri is None else uri.host_port.lower()


def profile_unique_id(aor: str, registrar: str | None) -> str:
    """The unique id of a profile: its address of record and registrar, normalized."""
    return f"{normalized_aor(aor)}|{normalized_server(registrar)}"


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _profile_data(values: Mapping[str, Any]) -> dict[str, Any]:
    """Entry data from flattened form values; raises InvalidAddressError for a bad address."""
    data: dict[str, Any] = {
        CONF_AOR: normalized_aor(values[CONF_AOR]),
        CONF_PASSWORD: values[CONF_PASSWORD],
        CONF_AUTH_USER: _text(values.get(CONF_AUTH_USER)),
        CONF_REALM: _text(values.get(CONF_REALM)),
        CONF_REGISTRAR: _text(values.get(CONF_REGISTRAR)),
        CONF_OUTBOUND_PROXY: _text(values.get(CONF_OUTBOUND_PROXY)),
        CONF_TRANSPORT: values.get(CONF_TRANSPORT) or TRANSPORT_AUTO,
        CONF_VERIFY_TLS: bool(values.get(CONF_VERIFY_TLS, True)),
    }
    if master := values.get(CONF_MASTER):
        data[CONF_MASTER] = master
    return data


def _flatten(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """The user form's values with the advanced section merged in."""
    values = {key: value for key, value in user_input.items() if key != SECTION_ADVANCED}
    values.update(user_input.get(SECTION_ADVANCED) or {})
    return values


def _nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Flat values shaped like the user form (for its suggested values)."""
    nested: dict[str, Any] = {
        key: value
        for key, value in values.items()
        if key not in ADVANCED_FIELDS and value not in (None, "")
    }
    nested[SECTION_ADVANCED] = {
        key: value
        for key, value in values.items()
        if key in ADVANCED_FIELDS and value not in (None, "")
    }
    return nested


def _clamp_expires(raw: str | None) -> int:
    try:
        expires = int(raw) if raw is not None else DEFAULT_EXPIRES
    except ValueError:
        return DEFAULT_EXPIRES
    return min(max(expires, MIN_EXPIRES), MAX_EXPIRES)


def _values_from_document(document: ProvisioningDocument) -> dict[str, Any]:
    """Flat user-form values from a provisioning document."""
    registrar = document.registrar
    proxy = document.outbound_proxy
    first_hop = proxy or registrar
    user = document.user
    return {
        CONF_AOR: user.uri,
        CONF_PASSWORD: user.password or "",
        CONF_AUTH_USER: user.account or "",
        CONF_REALM: user.realm or "",
        CONF_REGISTRAR: _server_text(registrar.host, registrar.port),
        CONF_OUTBOUND_PROXY: "" if proxy is None else _server_text(proxy.host, proxy.port),
        CONF_TRANSPORT: first_hop.transport.value,
        CONF_EXPIRES: _clamp_expires(document.expires),
        CONF_VERIFY_TLS: True,
    }


def _server_text(host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return host if port is None else f"{host}:{port}"


def read_provisioning(text: str) -> ProvisioningDocument | str:
    """Parse a pasted provisioning document; on failure the translation key of the problem.

    Runs in the executor: the XML parse is CPU work on user-sized input.
    """
    try:
        return parse_provisioning(text)
    except ProvisioningError as err:
        return err.problem.value


class SipProfilesConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add, reauthenticate and reconfigure SIP profiles."""

    VERSION = 1
    MINOR_VERSION = 1

    def __init__(self) -> None:
        """Start with no provisioned values."""
        self._provisioned: dict[str, Any] = {}
        self._server_answer = ""
        """The server's final response to the last check, shown in its form error."""

    async def _async_prove(self, data: Mapping[str, Any], options: Mapping[str, Any]) -> str | None:
        """Register once with the profile; None when it worked, else the form error's key."""
        self._server_answer = ""
        try:
            await async_check_profile(self.hass, data, options)
        except ProfileError as err:
            LOGGER.debug("Profile %s failed its check: %s", data.get(CONF_AOR), err.key)
            self._server_answer = err.server_answer
            return err.key if err.key in CHECK_ERRORS else "unknown"
        except Exception:
            LOGGER.exception("Unexpected error while checking profile %s", data.get(CONF_AOR))
            return "unknown"
        return None

    def _placeholders(self, **placeholders: str) -> dict[str, str]:
        """A form's placeholders: ``placeholders`` and the server's answer for its errors."""
        return {**placeholders, "server_answer": self._server_answer}

    @staticmethod
    @callback
    @override
    def async_get_options_flow(config_entry: SipProfileConfigEntry) -> SipProfilesOptionsFlow:
        """How the registration is kept: expiry and keep-alives."""
        return SipProfilesOptionsFlow()

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Buddies: whom a profile watches (``buddy_flow``)."""
        return {SUBENTRY_BUDDY: BuddySubentryFlow}

    # -- adding a profile ----------------------------------------------------------------------

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Enter the profile by hand, or paste a provisioning document."""
        return self.async_show_menu(step_id="user", menu_options=[STEP_MANUAL, STEP_PROVISIONING])

    async def async_step_manual(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """The profile's address of record, password and (collapsed) advanced settings."""
        if user_input is None:
            return self._async_show_manual_form(self._provisioned, {})
        values = _flatten(user_input)
        return await self._async_create_profile(values)

    async def async_step_provisioning(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Read a pasted provisioning document and fill the profile from it."""
        errors: dict[str, str] = {}
        if user_input is not None:
            document = await self.hass.async_add_executor_job(
                read_provisioning, user_input[CONF_DOCUMENT]
            )
            if isinstance(document, str):
                errors["base"] = document
            else:
                self._provisioned = _values_from_document(document)
                if not self._provisioned[CONF_PASSWORD]:
                    return self._async_show_manual_form(self._provisioned, {})
                return await self._async_create_profile(self._provisioned)
        return self.async_show_form(
            step_id=STEP_PROVISIONING,
            data_schema=self.add_suggested_values_to_schema(PROVISIONING_SCHEMA, user_input),
            errors=errors,
        )

    async def _async_create_profile(self, values: Mapping[str, Any]) -> ConfigFlowResult:
        """Check the values, prove them live, create the entry; else the user form again."""
        try:
            data = _profile_data(values)
        except InvalidAddressError:
            return self._async_show_manual_form(values, {CONF_AOR: "invalid_address"})
        try:
            unique_id = profile_unique_id(data[CONF_AOR], data[CONF_REGISTRAR])
            parse_server(data[CONF_OUTBOUND_PROXY])
        except InvalidAddressError:
            return self._async_show_manual_form(values, {"base": "invalid_address"})
        expires = int(values.get(CONF_EXPIRES, DEFAULT_EXPIRES))
        if not MIN_EXPIRES <= expires <= MAX_EXPIRES:
            return self._async_show_manual_form(values, {"base": "expires_out_of_range"})
        await self.async_set_unique_id(unique_id)
        self._abort_if_unique_id_configured()
        options = {
            CONF_EXPIRES: expires,
            CONF_KEEPALIVE: DEFAULT_KEEPALIVE,
        }
        if error := await self._async_prove(data, options):
            return self._async_show_manual_form(values, {"base": error})
        return self.async_create_entry(title=data[CONF_AOR], data=data, options=options)

    def _master_choices(self, exclude: str | None = None) -> list[SelectOptionDict]:
        return [
            SelectOptionDict(value=entry.entry_id, label=entry.title)
            for entry in self._async_current_entries(include_ignore=False)
            if entry.entry_id != exclude
        ]

    def _async_show_manual_form(
        self, values: Mapping[str, Any], errors: dict[str, str]
    ) -> ConfigFlowResult:
        advanced: dict[vol.Marker, Any] = {
            vol.Optional(CONF_AUTH_USER): TEXT,
            vol.Optional(CONF_REALM): TEXT,
            vol.Optional(CONF_REGISTRAR): TEXT,
            vol.Optional(CONF_OUTBOUND_PROXY): TEXT,
            vol.Required(CONF_TRANSPORT, default=TRANSPORT_AUTO): TRANSPORT_SELECTOR,
            vol.Required(CONF_EXPIRES, default=DEFAULT_EXPIRES): EXPIRES_IN_SECTION,
            vol.Required(CONF_VERIFY_TLS, default=True): BooleanSelector(),
        }
        if masters := self._master_choices():
            advanced[vol.Optional(CONF_MASTER)] = SelectSelector(
                SelectSelectorConfig(options=masters, mode=SelectSelectorMode.DROPDOWN)
            )
        schema = vol.Schema(
            {
                vol.Required(CONF_AOR): TEXT,
                vol.Required(CONF_PASSWORD): PASSWORD,
                vol.Required(SECTION_ADVANCED): section(vol.Schema(advanced), {"collapsed": True}),
            }
        )
        return self.async_show_form(
            step_id=STEP_MANUAL,
            data_schema=self.add_suggested_values_to_schema(schema, _nest(values)),
            errors=errors,
            description_placeholders=self._placeholders(**EXPIRES_LIMITS),
        )

    # -- reauthentication ----------------------------------------------------------------------

    async def async_step_reauth(
        self,
        entry_data: Mapping[str, Any],  # noqa: ARG002 - Home Assistant passes the entry data
    ) -> ConfigFlowResult:
        """The server rejected the profile's credentials."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the new password (and authentication user) and prove them live."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            updates = {
                CONF_PASSWORD: user_input[CONF_PASSWORD],
                CONF_AUTH_USER: _text(user_input.get(CONF_AUTH_USER)),
            }
            if error := await self._async_prove({**entry.data, **updates}, entry.options):
                errors["base"] = error
            else:
                return self._async_update_entry(entry, data={**entry.data, **updates})
        schema = vol.Schema(
            {
                vol.Required(CONF_PASSWORD): PASSWORD,
                vol.Optional(CONF_AUTH_USER): TEXT,
            }
        )
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(
                schema, {CONF_AUTH_USER: entry.data.get(CONF_AUTH_USER) or None}
            ),
            errors=errors,
            description_placeholders=self._placeholders(aor=entry.data[CONF_AOR]),
        )

    def _async_update_entry(
        self, entry: ConfigEntry, *, data: dict[str, Any], unique_id: str | None = None
    ) -> ConfigFlowResult:
        """Save the proven settings and start the profile over with them.

        A running profile is reloaded by its update listener when the settings changed. When
        they did not (the same password again, after the account was unlocked), nothing
        would reload it, and a profile whose credentials were refused does not try them
        again by itself: it is reloaded here.
        """
        if not entry.update_listeners:
            return self.async_update_reload_and_abort(entry, unique_id=unique_id, data=data)
        if data == entry.data and unique_id in (None, entry.unique_id):
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
        return self.async_update_and_abort(entry, unique_id=unique_id, data=data)

    # -- reconfiguration -----------------------------------------------------------------------

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change where and how the profile registers; the address of record stays."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        if user_input is not None:
            registrar = _text(user_input.get(CONF_REGISTRAR))
            outbound_proxy = _text(user_input.get(CONF_OUTBOUND_PROXY))
            updates: dict[str, Any] = {
                CONF_AUTH_USER: _text(user_input.get(CONF_AUTH_USER)),
                CONF_REALM: _text(user_input.get(CONF_REALM)),
                CONF_REGISTRAR: registrar,
                CONF_OUTBOUND_PROXY: outbound_proxy,
                CONF_TRANSPORT: user_input.get(CONF_TRANSPORT) or TRANSPORT_AUTO,
                CONF_VERIFY_TLS: bool(user_input.get(CONF_VERIFY_TLS, True)),
            }
            try:
                aor = normalized_aor(user_input[CONF_AOR])
            except InvalidAddressError:
                errors[CONF_AOR] = "invalid_address"
            else:
                if aor != normalized_aor(entry.data[CONF_AOR]):
                    return self.async_abort(reason="unique_id_mismatch")
                try:
                    unique_id = profile_unique_id(aor, registrar)
                    parse_server(outbound_proxy)
                except InvalidAddressError:
                    errors["base"] = "invalid_address"
                else:
                    if self._unique_id_taken(unique_id, entry):
                        return self.async_abort(reason="already_configured")
                    data = {**entry.data, **updates}
                    if error := await self._async_prove(data, entry.options):
                        errors["base"] = error
                    else:
                        return self._async_update_entry(entry, unique_id=unique_id, data=data)
        schema = vol.Schema(
            {
                vol.Required(CONF_AOR): TEXT,
                vol.Optional(CONF_AUTH_USER): TEXT,
                vol.Optional(CONF_REALM): TEXT,
                vol.Optional(CONF_REGISTRAR): TEXT,
                vol.Optional(CONF_OUTBOUND_PROXY): TEXT,
                vol.Required(CONF_TRANSPORT, default=TRANSPORT_AUTO): TRANSPORT_SELECTOR,
                vol.Required(CONF_VERIFY_TLS, default=True): BooleanSelector(),
            }
        )
        suggested = user_input if user_input is not None else entry.data
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                schema, {key: value for key, value in suggested.items() if value not in (None, "")}
            ),
            errors=errors,
            description_placeholders=self._placeholders(aor=entry.data[CONF_AOR]),
        )

    def _unique_id_taken(self, unique_id: str, entry: ConfigEntry) -> bool:
        """Whether another profile (not ``entry``) already has ``unique_id``."""
        return any(
            other.unique_id == unique_id and other.entry_id != entry.entry_id
            for other in self._async_current_entries(include_ignore=True)
        )


class SipProfilesOptionsFlow(OptionsFlow):
    """Expiry and keep-alive interval; saving reloads the profile (the entry's update listener)."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show and store the options."""
        errors: dict[str, str] = {}
        line_options = None if user_input is None else _line_options(user_input, errors)
        if user_input is not None and line_options is not None:
            options: dict[str, Any] = {
                CONF_EXPIRES: int(user_input[CONF_EXPIRES]),
                CONF_KEEPALIVE: int(user_input[CONF_KEEPALIVE]),
            }
            if user_input.get(CONF_PUBLISH_PRESENCE, DEFAULT_PUBLISH_PRESENCE):
                options[CONF_PUBLISH_PRESENCE] = True  # absent: not published
            return self.async_create_entry(data={**options, **line_options})
        entry = self.config_entry
        current = {
            CONF_EXPIRES: entry.options.get(
                CONF_EXPIRES, entry.data.get(CONF_EXPIRES, DEFAULT_EXPIRES)
            ),
            CONF_KEEPALIVE: entry.options.get(CONF_KEEPALIVE, DEFAULT_KEEPALIVE),
        }
        if CONF_PUBLISH_PRESENCE in entry.options:
            current[CONF_PUBLISH_PRESENCE] = entry.options[CONF_PUBLISH_PRESENCE]
        for key in (CONF_SHOW_CALLS, CONF_VOICEMAIL_URI):
            if key in entry.options:
                current[key] = entry.options[key]
        if user_input is not None:
            current = user_input  # refused: show what was entered
        schema = vol.Schema(
            {
                vol.Required(CONF_EXPIRES, default=DEFAULT_EXPIRES): OPTIONS_EXPIRES,
                vol.Required(CONF_KEEPALIVE, default=DEFAULT_KEEPALIVE): KEEPALIVE_SELECTOR,
                vol.Required(
                    CONF_PUBLISH_PRESENCE, default=DEFAULT_PUBLISH_PRESENCE
                ): BooleanSelector(),
                vol.Required(CONF_SHOW_CALLS, default=DEFAULT_SHOW_CALLS): BooleanSelector(),
                vol.Optional(CONF_VOICEMAIL_URI): TEXT,
            }
        )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(schema, current),
            description_placeholders=EXPIRES_LIMITS,
            errors=errors,
        )


def _line_options(user_input: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any] | None:
    """Calls shown and the voicemail address, as stored; None (and ``errors``) when unreadable."""
    options: dict[str, Any] = {}
    if user_input.get(CONF_SHOW_CALLS, DEFAULT_SHOW_CALLS):
        options[CONF_SHOW_CALLS] = True  # absent: calls get 480
    voicemail = str(user_input.get(CONF_VOICEMAIL_URI) or "").strip()
    if voicemail:
        try:
            options[CONF_VOICEMAIL_URI] = str(parse_address(voicemail))
        except InvalidAddressError:
            errors[CONF_VOICEMAIL_URI] = "invalid_voicemail_uri"
            return None
    return options
