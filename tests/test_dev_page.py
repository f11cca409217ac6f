"""The dev sandbox's page in a real browser (Debian's headless Chromium driven by
Playwright): ``runtime-adapter dev`` with the claude-code template, the real CLI
and the fake LLM. The page shows the workspace online, a message typed into its
chat box is answered and its task completes, "Refuse the key" puts
``auth_failed`` on the timeline, and nothing secret is on the page or its
event stream."""

from __future__ import annotations

import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import clean_env
from .harness import wait_for
from .test_claude_cli import CLI

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# where a README screenshot is written when asked (scripts/screenshot)
SHOT = os.environ.get("DEV_PAGE_SCREENSHOT")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CLI is None, reason="needs claude-agent-sdk with its bundled CLI"),
]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """``runtime-adapter dev`` until the test ends: (page URL, its work dir, output)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime_adapter", "dev", "--duration", "170", "--keep-logs"],
        env={**clean_env(), "TMPDIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    page = ""
    while not page:
        line = process.stdout.readline()
        assert line, "dev ended before it printed its page"
        lines.append(line)
        if line.startswith("page: "):
            page = line.split(" ", 1)[1].strip()
    [workdir] = [p for p in tmp_path.iterdir() if p.name.startswith("ra-dev-")]
    try:
        yield page, workdir, lines
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
        lines.append(out)
        assert process.returncode == 0, "".join(lines)[-3000:]


def secrets_of(workdir: Path) -> list[str]:
    """The sandbox's secret values: the key file, the workspace token, the inbound secret."""
    found = []
    for path in (
        workdir / "secrets" / "MINIMAX_API_KEY",
        workdir / "configs" / ".auth_token",
        workdir / "configs" / ".platform_inbound_secret",
    ):
        if path.exists():
            found.append(path.read_text().strip())
    return [value for value in found if value]


def distinct_colours(png: bytes) -> int:
    """How many colours a PNG screenshot holds (8-bit RGB or RGBA, not interlaced)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, [], b""
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        data = png[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            chunks.append(data)
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8
    assert colour in (2, 6)
    step = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * step
    previous = bytearray(stride)
    seen: set[bytes] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up, corner = previous[i], previous[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                guess = left + up - corner
                a, b, c = abs(guess - left), abs(guess - up), abs(guess - corner)
                near = left if a <= b and a <= c else up if b <= c else corner
                line[i] = (line[i] + near) & 0xFF
        if row % 8 == 0:
            seen.update(bytes(line[i : i + 3]) for i in range(0, stride, step * 4))
        previous = line
    return len(seen)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt install chromium)")
@pytest.mark.timeout(180)  # a browser, the sandbox and a real turn: more than the usual 60 s
def test_the_page_shows_the_workspace_answers_a_message_and_shows_a_refused_key(
    sandbox: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    page_url, workdir, _ = sandbox
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",  # tests run as root
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            opened = time.monotonic()
            page.goto(page_url)
            expect(page.locator("#status")).to_have_text("online", timeout=60_000)
            expect(page.locator("#conn")).to_have_text("live")
            assert time.monotonic() - opened < 60
            expect(page.locator("#timeline li").first).to_be_visible()

            page.fill("#chat-input", "hello from the browser")
            page.click("#chat-send")
            answer = page.locator(".msg.agent.answer")
            expect(answer.first).to_have_text("Hello from the fake LLM.", timeout=60_000)
            states = page.locator(".task-state")
            expect(states.last).to_have_attribute("data-state", "completed")
            expect(page.locator("#calls tr").first).to_contain_text("ok")
            context = page.text_content("#context-id")
            assert context
            assert answer.first.get_attribute("data-context") == context

            page.click("#fault-refuse")
            expect(page.locator("#timeline")).to_contain_text("refuses the key", timeout=2_000)
            expect(page.locator("#timeline .raised").first).to_contain_text(
                "auth_failed", timeout=30_000
            )
            expect(page.locator("#status")).to_have_text("degraded", timeout=30_000)

            shot = page.screenshot(full_page=True)
            (tmp_path / "dev-page.png").write_bytes(shot)
            if SHOT:
                Path(SHOT).write_bytes(shot)
            assert distinct_colours(shot) > 20  # text, badges and panels, not a blank page
            html = page.content()
        finally:
            browser.close()
    stream = _events(page_url)
    for value in secrets_of(workdir):
        assert value not in html
        assert value not in stream
    assert re.search(r"sha256:[0-9a-f]{8}", stream)  # the token, as a fingerprint


def _events(page_url: str) -> str:
    """A few seconds of the page's event stream (everything so far is replayed)."""
    text = ""
    with httpx.stream("GET", page_url + "events", timeout=10) as answer:
        started = time.monotonic()
        for chunk in answer.iter_text():
            text += chunk
            if time.monotonic() - started > 2:
                break
    wait_for(lambda: text, timeout=1)
    return text
