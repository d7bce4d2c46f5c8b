"""Finishing touches to WeasyPrint's PDF/UA tags, applied after rendering.

WeasyPrint (70) tags the body well but leaves two gaps that PDF/UA checkers
report:

* Running headers and footers (page margin boxes) are marked as content with
  MCIDs whose structure elements are never linked into the tree. We mark them
  as pagination artifacts instead, except the first page's header: that one
  joins the tree as the document's first element, so a screen reader announces
  the hospital (logo with its alt text), and the patient's identifiers, once.
* Header cells (/TH) carry no /Scope. Ours are either a column's header (in a
  row of headers) or a row's header (first cell of a row of data).

The rest of the file (fonts, XMP metadata, PDF/A or PDF/UA identification) is
kept as it is.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pikepdf
from pikepdf import Array, Dictionary, Name


def finish_tags(pdf: bytes) -> bytes:
    """The same PDF with margin boxes as artifacts and /Scope on header cells."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        root = doc.Root.get("/StructTreeRoot")
        if root is None:  # an untagged variant: nothing to finish
            return pdf
        in_tree = _reachable(root)
        document = _first_kid(root)
        parent_tree = _parent_tree(root)
        for index, page in enumerate(doc.pages):
            key = page.obj.get("/StructParents")
            mcids = parent_tree.get(int(key)) if key is not None else None
            if mcids is None:
                continue
            orphans = _orphan_groups(mcids, in_tree)
            if not orphans:
                continue
            if index == 0 and document is not None:
                header = orphans.pop(0)
                document.K.insert(0, header["root"])
                _reach_from(header["root"], in_tree)
            artifacts = {}
            for position, group in enumerate(orphans):
                subtype = "/Header" if position == 0 and index > 0 else "/Footer"
                for mcid in group["mcids"]:
                    artifacts[mcid] = subtype
                    mcids[mcid] = None
            if artifacts:
                _mark_artifacts(doc, page, artifacts)
        _scope_header_cells(root)
        out = io.BytesIO()
        doc.save(out, deterministic_id=True)
    return out.getvalue()


def _kids(node: pikepdf.Object) -> list[pikepdf.Object]:
    k = node.get("/K") if isinstance(node, Dictionary) else None
    if k is None:
        return []
    return list(k) if isinstance(k, Array) else [k]


def _first_kid(root: pikepdf.Object) -> pikepdf.Object | None:
    for kid in _kids(root):
        if isinstance(kid, Dictionary) and kid.get("/S") == Name.Document:
            return kid
    return None


def _reachable(root: pikepdf.Object) -> set[tuple[int, int]]:
    seen: set[tuple[int, int]] = set()
    _reach_from(root, seen)
    return seen


def _walk(node: pikepdf.Object, seen: set[tuple[int, int]]) -> Iterator[Dictionary]:
    """Each structure element reachable from node once, recording it in seen."""
    stack = [node]
    while stack:
        item = stack.pop()
        if not isinstance(item, Dictionary):
            continue
        if item.is_indirect:
            if item.objgen in seen:
                continue
            seen.add(item.objgen)
        yield item
        stack.extend(_kids(item))


def _reach_from(node: pikepdf.Object, seen: set[tuple[int, int]]) -> None:
    for _ in _walk(node, seen):
        pass


def _parent_tree(root: pikepdf.Object) -> dict[int, pikepdf.Array]:
    """Page StructParents key -> its array of structure elements by MCID."""
    tree: dict[int, pikepdf.Array] = {}
    stack = [root.get("/ParentTree")]
    while stack:
        node = stack.pop()
        if node is None:
            continue
        nums = node.get("/Nums")
        if nums is not None:
            for i in range(0, len(nums) - 1, 2):
                if isinstance(nums[i + 1], Array):
                    tree[int(nums[i])] = nums[i + 1]
        stack.extend(node.get("/Kids", []))
    return tree


def _orphan_groups(mcids: pikepdf.Array, in_tree: set[tuple[int, int]]) -> list[dict]:
    """Content whose elements are not in the tree, grouped by topmost element,
    in the order drawn (the header's margin box first)."""
    groups: dict[tuple[int, int], dict] = {}
    for mcid, element in enumerate(mcids):
        if not isinstance(element, Dictionary) or element.objgen in in_tree:
            continue
        top = element
        while True:
            parent = top.get("/P")
            if (not isinstance(parent, Dictionary) or parent.objgen in in_tree
                    or parent.get("/Type") == Name.StructTreeRoot):
                break
            top = parent
        groups.setdefault(top.objgen, {"root": top, "mcids": []})["mcids"].append(mcid)
    return sorted(groups.values(), key=lambda g: g["mcids"][0])


_MARKED = re.compile(rb"/\w+\s*<<\s*/MCID\s+(\d+)\s*>>\s*BDC")


def _mark_artifacts(doc: pikepdf.Pdf, page: pikepdf.Page, artifacts: dict[int, str]) -> None:
    """Rewrite ``/Tag <</MCID n>> BDC`` as ``/Artifact <</Type /Pagination ...>> BDC``.

    A regular expression, not a full content-stream parse (five times slower):
    WeasyPrint writes property lists in this one form, and its text strings are
    hex glyph ids, which cannot contain ``<</MCID``.
    """
    def replace(match: re.Match[bytes]) -> bytes:
        subtype = artifacts.get(int(match.group(1)))
        if subtype is None:
            return match.group(0)
        return b"/Artifact <</Type /Pagination /Subtype " + subtype.encode() + b">> BDC"

    contents = page.obj.Contents
    streams = list(contents) if isinstance(contents, Array) else [contents]
    data = b"\n".join(stream.read_bytes() for stream in streams)
    page.obj.Contents = doc.make_stream(_MARKED.sub(replace, data))


def _scope_header_cells(root: pikepdf.Object) -> None:
    for node in _walk(root, set()):
        if node.get("/S") == Name.TR:
            cells = [c for c in _kids(node) if isinstance(c, Dictionary)]
            has_data = any(c.get("/S") == Name.TD for c in cells)
            for cell in cells:
                if cell.get("/S") == Name.TH:
                    attributes = cell.get("/A")
                    if not isinstance(attributes, Dictionary):
                        attributes = Dictionary(O=Name.Table)
                        cell.A = attributes
                    attributes.Scope = Name.Row if has_data else Name.Column
