"""The brand images: the sizes Home Assistant's brand rules ask for, served for our domain."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
import struct

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.sip_profiles.const import DOMAIN

BRAND = Path(__file__).parents[2] / "custom_components" / DOMAIN / "brand"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path.name
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("variant", ["", "dark_"])
def test_images_have_the_sizes_of_the_rules(variant: str) -> None:
    assert png_size(BRAND / f"{variant}icon.png") == (256, 256)
    assert png_size(BRAND / f"{variant}icon@2x.png") == (512, 512)
    width, height = png_size(BRAND / f"{variant}logo.png")
    assert height == 256  # the shortest side: 128 to 256
    assert width > height  # landscape
    assert png_size(BRAND / f"{variant}logo@2x.png") == (2 * width, 2 * height)


def test_only_images_home_assistant_serves() -> None:
    assert {path.name for path in BRAND.iterdir()} == {
        f"{variant}{kind}{scale}.png"
        for variant in ("", "dark_")
        for kind in ("icon", "logo")
        for scale in ("", "@2x")
    }


async def test_home_assistant_serves_our_icon(
    hass: HomeAssistant, hass_client: ClientSessionGenerator
) -> None:
    """The integration list and the flow's last step show our icon, not a broken image."""
    assert await async_setup_component(hass, DOMAIN, {})
    assert await async_setup_component(hass, "brands", {})
    client = await hass_client()
    for image in ("icon.png", "dark_icon@2x.png", "logo.png"):
        response = await client.get(f"/api/brands/integration/{DOMAIN}/{image}")
        assert response.status == HTTPStatus.OK, image
        assert await response.read() == (BRAND / image).read_bytes()
