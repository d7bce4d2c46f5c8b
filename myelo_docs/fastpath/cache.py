"""Templates kept in memory and on disk, so each is rendered once per setting.

The disk copy lets batch workers, service workers and later runs share one
render: whoever needs a template first builds it under a file lock while
the others wait and then read it. A template holds no patient data (its
slots hold the letter "X"), and its file name is a hash of everything that
made it (versions, content, templates, brand, protocol, fonts, paper), so a
change anywhere makes a new one. Set MYELO_DOCS_CACHE_DIR to choose the
folder; "off" keeps templates in memory only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from myelo_docs.about import __version__
from myelo_docs.fastpath.template import ONE_LINE, Lines, PlanTags, Site, Template, build
from myelo_docs.verify.provenance import content_provenance

FORMAT = 5  # bump when template.py cuts templates differently


def default_dir() -> Path | None:
    chosen = os.environ.get("MYELO_DOCS_CACHE_DIR")
    if chosen == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "myelo-docs" / "templates"


class TemplateCache:
    def __init__(self, renderer: Any, folder: Path | None | str = "default"):
        self.renderer = renderer
        self.folder = default_dir() if folder == "default" else (
            Path(folder) if folder else None)
        self._memory: dict[tuple[Any, ...], Template] = {}

    def get(self, type_name: str, language: str, large_print: bool, plan_pages: int,
            lines: Lines = ONE_LINE, header_margin: int | None = None) -> Template:
        key = (type_name, language, large_print, plan_pages, tuple(lines), header_margin)
        if key not in self._memory:
            self._memory[key] = self._load_or_build(key)
        return self._memory[key]

    def _name(self, key: tuple[Any, ...]) -> str:
        r = self.renderer
        material = json.dumps([FORMAT, __version__, r.provenance, r.paper, list(key),
                               content_provenance(r.content(key[1]))], sort_keys=True, default=str)
        return hashlib.sha256(material.encode()).hexdigest()[:32]

    def _load_or_build(self, key: tuple[Any, ...]) -> Template:
        if self.folder is None:
            return build(self.renderer, *key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            return build(self.renderer, *key)
        path = self.folder / (self._name(key) + ".tmpl")
        with _locked(path.with_suffix(".lock")):
            if path.exists():
                loaded = _read(path)
                if loaded is not None:
                    return loaded
            template = build(self.renderer, *key)
            _write(path, template)
            return template


@contextlib.contextmanager
def _locked(path: Path):  # type: ignore[no-untyped-def]
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write(path: Path, t: Template) -> None:
    blobs = [chunk for _, chunk in t.objects if chunk is not None]
    meta = {
        "key": list(t.key), "pages": t.pages, "page_size_pt": list(t.page_size_pt),
        "head": t.head.decode("latin-1"), "root": t.root, "info": t.info, "digest": t.digest,
        "labels": t.labels, "lines": t.lines, "tagged": t.tagged,
        "plan_tags": {slot: tags.__dict__ for slot, tags in t.plan_tags.items()},
        "check": {str(num): chunk.decode("latin-1") for num, chunk in t.check.items()},
        "objects": [[num, chunk is None, 0 if chunk is None else len(chunk)]
                    for num, chunk in t.objects],
        "dynamic": [[num, page, None if site is None else site.__dict__]
                    for num, (page, site) in t.dynamic.items()],
    }
    header = json.dumps(meta).encode()
    body = b"".join(blobs)
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


def _read(path: Path) -> Template | None:
    """The template, or None if the file is damaged (it is then rebuilt)."""
    try:
        raw = path.read_bytes()
        checksum, data = raw.split(b"\n", 1)
        if hashlib.sha256(data).hexdigest().encode() != checksum:
            return None
        length, rest = data.split(b"\n", 1)
        meta = json.loads(rest[:int(length)])
        body = memoryview(rest)[int(length):]
        objects, position = [], 0
        for num, dynamic, size in meta["objects"]:
            if dynamic:
                objects.append((num, None))
            else:
                objects.append((num, bytes(body[position:position + size])))
                position += size
        return Template(
            key=_tuples(meta["key"]),
            pages=meta["pages"],
            page_size_pt=tuple(meta["page_size_pt"]), head=meta["head"].encode("latin-1"),
            objects=objects,
            dynamic={num: (page, None if site is None else Site(**site))
                     for num, page, site in meta["dynamic"]},
            root=meta["root"], info=meta["info"], digest=meta["digest"],
            labels=meta["labels"], lines=meta["lines"], tagged=meta["tagged"],
            plan_tags={slot: PlanTags(**tags) for slot, tags in meta["plan_tags"].items()},
            check={int(num): chunk.encode("latin-1") for num, chunk in meta["check"].items()})
    except (OSError, ValueError, KeyError, TypeError):
        return None
