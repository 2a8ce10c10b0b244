"""Data the suite reads in place from the shared directory beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


def shared_path(*parts: str) -> Path:
    """``shared/<parts>`` in the nearest folder above the repository that has it.

    ``SIP_PROFILES_SHARED`` names the shared directory instead. The path is returned even when
    it does not exist (as the nearest candidate), so that a test can skip saying where it looked.
    """
    override = os.environ.get("SIP_PROFILES_SHARED")
    if override:
        return Path(override, *parts)
    candidates = [folder / "shared" / Path(*parts) for folder in _ROOT.parents]
    return next((path for path in candidates if path.exists()), candidates[0])
