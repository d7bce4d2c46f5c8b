"""Templates kept in memory and on disk, so each is rendered once per setting.

The disk copy lets batch workers, service workers and later runs share one
render: whoever needs a template first builds it under a file lock while
the others wait and then read it. A template holds no patient data (its
slots hold the letter "X", its calibration made-up text), and its file name
is a hash of everything that shapes it: the source of the fast path and of
the render engine, the versions of WeasyPrint, Pango and pikepdf, the
templates folder and the fonts byte for byte, the content, brand, protocol
and paper. A change anywhere makes a new one; nothing is numbered by hand.
Set MYELO_DOCS_CACHE_DIR to choose the folder; "off" keeps templates in
memory only.

A layout the fast path cannot derive (Unsure at build) is remembered the same
way, so its packets go straight to the full render.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from myelo_docs.about import __version__
from myelo_docs.assets import PACKAGE_DIR, fonts_dir
from myelo_docs.render.fastpath.shaping import Shaper
from myelo_docs.render.fastpath.template import ONE_LINE, PlanTags, Site, Template, build, calibrate
from myelo_docs.render.fastpath.unsure import Unsure
from myelo_docs.verify.provenance import content_provenance

# The code that shapes a template: the render stage (the engine that lays it out,
# and the fast path inside it, render/fastpath/).
_SOURCES = ("render",)


def default_dir() -> Path | None:
    chosen = os.environ.get("MYELO_DOCS_CACHE_DIR")
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "myelo-docs" / "templates"


def _digest_files(paths: list[Path], root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """The fast path's and render engine's source, and the libraries they lean on."""
    import pikepdf
    import weasyprint
    from weasyprint.text.ffi import pango

    files = [p for name in _SOURCES for p in (PACKAGE_DIR / name).rglob("*.py")]
    return json.dumps([__version__, weasyprint.__version__, pikepdf.__version__,
                       int(pango.pango_version()), _digest_files(files, PACKAGE_DIR)])


@functools.cache
def asset_fingerprint(templates: Path) -> str:
    """The templates folder and the bundled fonts, byte for byte."""
    files = [p for p in templates.rglob("*") if p.is_file()]
    return _digest_files(files, templates) + _digest_files(
        [p for p in fonts_dir().iterdir() if p.is_file()], fonts_dir())


class TemplateCache:
    def __init__(self, renderer: Any, shaper: Shaper, folder: Path | None | str = "default"):
        self.renderer = renderer
        self.shaper = shaper
        self.folder = default_dir() if folder == "default" else (
            Path(folder) if folder else None)
        self._memory: dict[tuple[Any, ...], Any] = {}

    def get(self, type_name: str, language: str, large_print: bool, plan_pages: int = 1,
            shape: Any = ONE_LINE) -> Template:
        """The template for this key, built on first use. Raises Unsure if its
        layout cannot be derived (then and every later time)."""
        key = (type_name, language, large_print, plan_pages, shape)
        found = self._memory.get(key)
        if found is None:
            calibration = self.calibration(type_name, language, large_print)
            found = self._load_or_build("template", key, lambda: build(
                self.renderer, self.shaper, key, calibration))
            self._memory[key] = found
        if isinstance(found, str):
            raise Unsure(found)
        return found

    def calibration(self, type_name: str, language: str, large_print: bool) -> dict[str, Any]:
        key = ("calibration", type_name, language, large_print)
        found = self._memory.get(key)
        if found is None:
            found = self._load_or_build("calibration", key, lambda: calibrate(
                self.renderer, self.shaper, type_name, language, large_print))
            self._memory[key] = found
        if isinstance(found, str):
            raise Unsure(found)
        return found

    def _name(self, kind: str, key: tuple[Any, ...]) -> str:
        r = self.renderer
        material = json.dumps([kind, code_fingerprint(), asset_fingerprint(r.templates),
                               r.provenance, r.paper, list(key),
                               content_provenance(r.content(key[1 if kind == "template" else 2]))],
                              sort_keys=True, default=str)
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def _load_or_build(self, kind: str, key: tuple[Any, ...], make: Any) -> Any:
        """The thing, or the reason (a str) it cannot be made."""

        def attempt() -> Any:
            try:
                return make()
            except Unsure as exc:
                return str(exc)

        if self.folder is None:
            return attempt()
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            return attempt()
        path = self.folder / (self._name(kind, key) + ".tmpl")
        with _locked(path.with_suffix(".lock")):
            if path.exists():
                loaded = _read(path)
                if loaded is not None:
                    return loaded
            made = attempt()
            _write(path, made)
            return made


@contextlib.contextmanager
def _locked(path: Path):  # type: ignore[no-untyped-def]
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _meta(made: Any) -> tuple[dict[str, Any], bytes]:
    if isinstance(made, str):  # Unsure: the reason
        return {"unsure": made}, b""
    if isinstance(made, dict):  # a calibration
        return {"calibration": made}, b""
    t: Template = made
    blobs = [chunk for _, chunk in t.objects if chunk is not None]
    meta = {
        "key": t.key, "pages": t.pages, "page_size_pt": list(t.page_size_pt),
        "head": t.head.decode("latin-1"), "root": t.root, "info": t.info, "digest": t.digest,
        "labels": t.labels, "calibration": t.calibration, "pages_area": t.pages_area,
        "tagged": t.tagged,
        "plan_tags": {slot: asdict(tags) for slot, tags in t.plan_tags.items()},
        "check": {str(num): chunk.decode("latin-1") for num, chunk in t.check.items()},
        "objects": [[num, chunk is None, 0 if chunk is None else len(chunk)]
                    for num, chunk in t.objects],
        "dynamic": [[num, page, None if site is None else asdict(site)]
                    for num, (page, site) in t.dynamic.items()],
    }
    return {"template": meta}, b"".join(blobs)


def _write(path: Path, made: Any) -> None:
    meta, body = _meta(made)
    header = json.dumps(meta).encode()
    data = b"%d\n" % len(header) + header + body
    checksum = hashlib.sha256(data).hexdigest().encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(checksum + b"\n" + data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _tuples(value: Any) -> Any:
    """JSON lists back into the tuples a template key is made of."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _read(path: Path) -> Any:
    """What the file holds, or None if it is damaged (it is then rebuilt)."""
    try:
        raw = path.read_bytes()
        checksum, data = raw.split(b"\n", 1)
        if hashlib.sha256(data).hexdigest().encode() != checksum:
            return None
        length, rest = data.split(b"\n", 1)
        document = json.loads(rest[:int(length)])
        if "unsure" in document:
            return str(document["unsure"])
        if "calibration" in document:
            return document["calibration"]
        meta = document["template"]
        body = memoryview(rest)[int(length):]
        objects, position = [], 0
        for num, dynamic, size in meta["objects"]:
            if dynamic:
                objects.append((num, None))
            else:
                objects.append((num, bytes(body[position:position + size])))
                position += size
        return Template(
            key=_tuples(meta["key"]), pages=meta["pages"],
            page_size_pt=tuple(meta["page_size_pt"]), head=meta["head"].encode("latin-1"),
            objects=objects,
            dynamic={num: (page, None if site is None else Site(**site))
                     for num, page, site in meta["dynamic"]},
            root=meta["root"], info=meta["info"], digest=meta["digest"],
            labels=meta["labels"], calibration=meta["calibration"],
            pages_area=meta["pages_area"], tagged=meta["tagged"],
            plan_tags={slot: PlanTags(**tags) for slot, tags in meta["plan_tags"].items()},
            check={int(num): chunk.encode("latin-1") for num, chunk in meta["check"].items()})
    except (OSError, ValueError, KeyError, TypeError):
        return None
