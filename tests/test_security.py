"""Text fields and brand files can't reach the network or local files."""

from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

import pytest

from conftest import flat, pages_text, record
from myelo_docs import ConfigError, get_renderer
from myelo_docs.assets import builtin_brands_dir, fonts_dir, templates_dir
from myelo_docs.render.fetcher import LockedFetcher, RefusedURL


class Listener:
    """A loopback TCP listener that counts every connection it receives."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


def hostile(port: int) -> list[str]:
    return [
        f'<img src="http://127.0.0.1:{port}/img">',
        f'<link rel="stylesheet" href="http://127.0.0.1:{port}/css">',
        "file:///etc/passwd",
        f'<style>@import url("http://127.0.0.1:{port}/imp");</style>',
        '<object data="file:///etc/passwd"></object>',
        "{{ 7*7 }} {% raw %}",
    ]


def test_markup_in_every_field_prints_literally_and_fetches_nothing(renderer, listener):
    payloads = hostile(listener.port)
    document = renderer.packet(record(
        patient_name=payloads[0],
        mrn="file:///etc/passwd",
        physician=payloads[1],
        nurse=payloads[5],
        follow_up=payloads[3],
        instructions=payloads,
        medications=[{"name": payloads[4], "instruction": payloads[0]}],
    ))
    whole = flat(" ".join(pages_text(document.pdf)))
    for payload in payloads:
        assert flat(payload) in whole
    assert "{{ 7*7 }}" in whole and " 49 " not in whole
    assert "root:x:0" not in whole
    assert listener.hits == 0


def test_hostile_brand_text_and_svg_logo_fetch_nothing(tmp_path, listener):
    brand_dir = tmp_path / "brand"
    shutil.copytree(builtin_brands_dir() / "demo", brand_dir)
    port = listener.port
    (brand_dir / "logo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'width="10" height="10">'
        f'<image href="http://127.0.0.1:{port}/svg" width="10" height="10"/>'
        '<image xlink:href="file:///etc/passwd" width="10" height="10"/>'
        f'<style>@import url("http://127.0.0.1:{port}/svgcss");</style>'
        '<rect width="10" height="10"/></svg>'
    )
    toml = (brand_dir / "brand.toml").read_text().replace(
        'hospital_name = "Demo General Hospital"',
        f'hospital_name = "<img src=\'http://127.0.0.1:{port}/name\'> {{{{ 7*7 }}}}"',
    )
    (brand_dir / "brand.toml").write_text(toml)
    document = get_renderer(brand=brand_dir / "brand.toml").packet(record())
    first = "".join(pages_text(document.pdf)[0].split())
    assert f"<imgsrc='http://127.0.0.1:{port}/name'>" in first
    assert "{{7*7}}" in first
    assert listener.hits == 0


@pytest.mark.parametrize("logo", ["../../../etc/passwd", "/etc/hostname", "missing.svg",
                                  "logo.gif"])
def test_logo_must_be_an_image_inside_the_brand_folder(tmp_path, logo):
    brand_dir = tmp_path / "brand"
    shutil.copytree(builtin_brands_dir() / "demo", brand_dir)
    toml = (brand_dir / "brand.toml").read_text().replace('logo = "logo.svg"', f'logo = "{logo}"')
    (brand_dir / "brand.toml").write_text(toml)
    with pytest.raises(ConfigError, match="logo"):
        get_renderer(brand=brand_dir / "brand.toml")


def test_fetcher_serves_only_our_assets(tmp_path):
    fetcher = LockedFetcher([templates_dir(), fonts_dir()])
    served = fetcher.fetch((templates_dir() / "print.css").as_uri())
    assert served.read().startswith(b"/*")
    for url in [
        "http://127.0.0.1:9/x",
        "https://example.org/x.css",
        "file:///etc/passwd",
        (templates_dir() / ".." / "pyproject.toml").resolve().as_uri(),
        "data:text/css,body{}",
        "ftp://127.0.0.1/x",
        Path("/etc/ssl/certs/ca-certificates.crt").as_uri(),
    ]:
        with pytest.raises(RefusedURL):
            fetcher.fetch(url)
