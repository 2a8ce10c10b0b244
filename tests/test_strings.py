"""The texts users read: both languages complete, markdown that renders as meant, plain errors.

Home Assistant's frontend renders step and field descriptions, abort reasons, repair issues and
action descriptions as GitHub-flavoured markdown, which turns any ``user@host`` into a
``mailto:`` link; examples and addresses there sit in code spans. Form errors, exception messages,
titles and entity names are shown as plain text, where markup would show as typed.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import re
import string
from typing import Any

import pytest

INTEGRATION = Path(__file__).parent.parent / "custom_components" / "sip_profiles"
STRINGS = json.loads((INTEGRATION / "strings.json").read_text(encoding="utf-8"))
LANGUAGES = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted((INTEGRATION / "translations").glob("*.json"))
}

MARKDOWN = [
    re.compile(pattern)
    for pattern in (
        r"config\.step\.[^.]+\.description",
        r"config\.step\.[^.]+\.data_description\.[^.]+",
        r"config\.step\.[^.]+\.sections\.[^.]+\.description",
        r"config\.step\.[^.]+\.sections\.[^.]+\.data_description\.[^.]+",
        r"config\.abort\.[^.]+",
        r"options\.step\.[^.]+\.description",
        r"options\.step\.[^.]+\.data_description\.[^.]+",
        r"config_subentries\.[^.]+\.step\.[^.]+\.description",
        r"config_subentries\.[^.]+\.step\.[^.]+\.data_description\.[^.]+",
        r"config_subentries\.[^.]+\.abort\.[^.]+",
        r"issues\.[^.]+\.description",
        r"services\.[^.]+\.description",
        r"services\.[^.]+\.fields\.[^.]+\.description",
    )
]
ADDRESS = "sip:alice@example.com"
PLACEHOLDER_VALUES = {"aor": ADDRESS, "profile": ADDRESS, "uri": "sip:bob@example.com"}
"""What the address placeholders hold at run time (the profile's title is its address)."""
CODE_SPAN = re.compile(r"`[^`]*`")
AUTOLINKED = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]*\w|https?://|www\.")
"""What GitHub-flavoured markdown turns into a link outside code spans."""


def texts(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every (dotted key, text) of a strings file."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from texts(value, f"{path}.{key}" if path else key)
    else:
        yield path, node


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def is_markdown(key: str) -> bool:
    return any(pattern.fullmatch(key) for pattern in MARKDOWN)


def test_english_translation_is_strings_json() -> None:
    assert LANGUAGES["en"] == STRINGS


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_every_language_has_every_text_with_its_placeholders(language: str) -> None:
    english = dict(texts(STRINGS))
    translated = dict(texts(LANGUAGES[language]))
    assert translated.keys() == english.keys()
    for key, text in english.items():
        assert placeholders(translated[key]) == placeholders(text), key


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_markdown_texts_link_nothing(language: str) -> None:
    """Examples and addresses in rendered markdown are code spans, never ``mailto:`` links."""
    markdown = [(key, text) for key, text in texts(LANGUAGES[language]) if is_markdown(key)]
    assert len(markdown) > 40  # the patterns above still match the file's layout
    for key, text in markdown:
        values = {name: PLACEHOLDER_VALUES.get(name, "x") for name in placeholders(text)}
        rendered = CODE_SPAN.sub("", text.format(**values))
        assert not AUTOLINKED.search(rendered), f"{key}: {text}"


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_plain_texts_carry_no_markup(language: str) -> None:
    """Form errors, messages, names and titles are shown as typed: no backticks."""
    plain = [(key, text) for key, text in texts(LANGUAGES[language]) if not is_markdown(key)]
    assert any(".error." in key for key, _ in plain)
    for key, text in plain:
        assert "`" not in text, f"{key}: {text}"


def test_the_check_finds_what_the_frontend_would_link() -> None:
    """The autolink pattern sees a bare address and an address placeholder, not a quoted one."""
    assert AUTOLINKED.search(CODE_SPAN.sub("", "such as sip:alice@example.com."))
    assert AUTOLINKED.search(f"credentials of {ADDRESS}.")
    assert not AUTOLINKED.search(CODE_SPAN.sub("", "such as `sip:alice@example.com`."))
    assert not AUTOLINKED.search("the host[:port] of a registrar")
