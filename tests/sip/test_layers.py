"""The three rooms: the SIP core imports neither asyncio nor Home Assistant, its asyncio layer
no Home Assistant."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SIP = Path(__file__).resolve().parents[2] / "custom_components" / "sip_profiles" / "sip"


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            # A relative import must stay inside the sip package.
            target = path.parent
            for _ in range(node.level - 1):
                target = target.parent
            assert target == SIP or SIP in target.parents, f"{path} reaches out of sip/"
    return roots


CORE = sorted(p for p in SIP.rglob("*.py") if "aio" not in p.relative_to(SIP).parts)
ASYNCIO_LAYER = sorted((SIP / "aio").rglob("*.py"))


def test_the_layers_are_not_empty() -> None:
    assert len(CORE) > 10
    assert len(ASYNCIO_LAYER) > 3


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(SIP)))
def test_core_imports_neither_asyncio_nor_home_assistant(path: Path) -> None:
    assert not imported_roots(path) & {"asyncio", "homeassistant", "aiodns"}


@pytest.mark.parametrize("path", ASYNCIO_LAYER, ids=lambda p: str(p.relative_to(SIP)))
def test_asyncio_layer_does_not_import_home_assistant(path: Path) -> None:
    assert "homeassistant" not in imported_roots(path)
