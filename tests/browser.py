"""Debian's chromium through Playwright, the one way the console's browser tests drive a
browser (never a downloaded one): where it is, how it starts, how a test logs in."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_chromium():
    """Skip the calling test module without Debian's chromium; its Playwright API."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (make test "
                    "installs it with apt-get)", allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def log_in(page, base: str, who: str, password: str, next_path: str = "") -> None:
    from playwright.sync_api import expect

    page.goto(f"{base}/console/login" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("Principal name").fill(who)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".who-name")).to_contain_text(who)
