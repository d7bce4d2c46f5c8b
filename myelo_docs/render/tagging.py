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
* WeasyPrint builds the tree page by page, so a table that runs over a page
  break becomes one Table per page, each with the header row it repeats, and
  a list one L per page: a screen reader would meet several tables or lists.
  A Table that opens a page, continuing the Table that ended the page before
  with the same header row, is joined to it: its rows move into the first
  Table, and its repeated header row becomes an artifact (still printed, not
  read twice). A list that WeasyPrint broke over a page break (known from
  the layout: lists_continued) is joined the same way (its items move).

The rest of the file (fonts, XMP metadata, PDF/A or PDF/UA identification) is
kept as it is.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pikepdf
from pikepdf import Array, Dictionary, Name


def lists_continued(layout: object) -> set[int]:
    """The pages (0-based) at whose top a list goes on from the page before,
    from WeasyPrint's layout (a weasyprint Document): a list element laid out
    on both pages."""
    def lists(box: object) -> Iterator[object]:
        if getattr(box, "element_tag", "") in ("ul", "ol"):
            yield box.element  # type: ignore[attr-defined]
        for child in getattr(box, "children", ()):
            yield from lists(child)

    seen: list[set[int]] = [{id(e) for e in lists(page._page_box)}  # type: ignore[attr-defined]
                            for page in layout.pages]  # type: ignore[attr-defined]
    return {index for index in range(1, len(seen)) if seen[index] & seen[index - 1]}


def finish_tags(pdf: bytes, continued: set[int]) -> bytes:
    """The same PDF with margin boxes as artifacts, /Scope on header cells and
    each table one Table across pages; each list one L across the pages in
    ``continued`` (lists_continued)."""
    with pikepdf.open(io.BytesIO(pdf)) as doc:
        root = doc.Root.get("/StructTreeRoot")
        if root is None:  # an untagged variant: nothing to finish
            return pdf
        document = _first_kid(root)
        page_index = {page.obj.objgen: i for i, page in enumerate(doc.pages)}
        repeated = _join_tables(document, page_index, continued) if document is not None else {}
        in_tree = _reachable(root)
        parent_tree = _parent_tree(root)
        for index, page in enumerate(doc.pages):
            key = page.obj.get("/StructParents")
            mcids = parent_tree.get(int(key)) if key is not None else None
            if mcids is None:
                continue
            artifacts = {}
            for mcid in repeated.get(index, ()):
                artifacts[mcid] = "/Header"
                mcids[mcid] = None
            orphans = _orphan_groups(mcids, in_tree)
            if index == 0 and document is not None and orphans:
                header = orphans.pop(0)
                document.K.insert(0, header["root"])
                _reach_from(header["root"], in_tree)
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


def _page_of(node: pikepdf.Object, page_index: dict) -> int | None:
    page = node.get("/Pg") if isinstance(node, Dictionary) else None
    return page_index.get(page.objgen) if page is not None else None


def _chain(node: pikepdf.Object, last: bool) -> list[Dictionary]:
    """node, then its first (or last) structure element child, and so on down."""
    chain = []
    while isinstance(node, Dictionary):
        chain.append(node)
        elements = [k for k in _kids(node) if isinstance(k, Dictionary) and "/S" in k]
        node = (elements[-1] if last else elements[0]) if elements else None
    return chain


def _header_row(table: Dictionary) -> Dictionary | None:
    heads = [k for k in _kids(table) if isinstance(k, Dictionary) and k.get("/S") == Name.THead]
    return heads[0] if heads else None


def _cells(row_group: Dictionary) -> list[Dictionary]:
    return [cell for row in _kids(row_group) if isinstance(row, Dictionary)
            for cell in _kids(row) if isinstance(cell, Dictionary)
            and cell.get("/S") in (Name.TH, Name.TD)]


def _mcids(node: pikepdf.Object) -> list[int]:
    found = []
    for kid in _kids(node):
        if isinstance(kid, int):
            found.append(int(kid))
        elif isinstance(kid, Dictionary) and "/MCID" in kid:
            found.append(int(kid.MCID))
        elif isinstance(kid, Dictionary):
            found += _mcids(kid)
    return found


def _join_tables(document: Dictionary, page_index: dict,
                 continued: set[int]) -> dict[int, list[int]]:
    """Join each Table continued at the top of a page to the one it continues,
    and each list on the pages where the layout says one goes on.

    Returns, per page index, the MCIDs of the repeated header rows (now to be
    artifacts).
    """
    parts: dict[int, list[Dictionary]] = {}
    for kid in _kids(document):
        page = _page_of(kid, page_index)
        if isinstance(kid, Dictionary) and kid.get("/S") == Name.Part and page is not None:
            parts.setdefault(page, []).append(kid)
    # Every page's chains are taken before any table is joined (joining empties
    # the containers of a page that held nothing but table rows).
    chains = {page: (_chain(kids[0], last=False), _chain(kids[-1], last=True))
              for page, kids in parts.items()}
    repeated: dict[int, list[int]] = {}
    head_of: dict[tuple[int, int], Dictionary] = {}
    for page in sorted(parts):
        if page - 1 not in parts:
            continue
        before, after = chains[page - 1][1], chains[page][0]
        for upper, lower in zip(before, after, strict=False):
            if upper.get("/S") != lower.get("/S"):
                break
            if upper.get("/S") == Name.L:
                if page not in continued:  # two lists, one ending a page, one opening the next
                    break
                head = head_of.get(upper.objgen, upper)
                _move_items(head, lower)
                head_of[lower.objgen] = head
                break
            if upper.get("/S") != Name.Table:
                continue
            head = head_of.get(upper.objgen, upper)
            head_row, lower_row = _header_row(head), _header_row(lower)
            if (head_row is None) != (lower_row is None):
                break
            if head_row is not None and len(_cells(head_row)) != len(_cells(lower_row)):
                break
            if lower_row is not None:
                repeated.setdefault(page, []).extend(_mcids(lower_row))
            _move_rows(head, lower, head_row, lower_row)
            head_of[lower.objgen] = head
            break
    return repeated


def _move_rows(head: Dictionary, lower: Dictionary, head_row: Dictionary | None,
               lower_row: Dictionary | None) -> None:
    """Move lower's body rows into head, pointing their cells at head's header
    cells, and take lower (and any container it leaves empty) out of the tree."""
    renamed = {}
    if head_row is not None and lower_row is not None:
        renamed = {str(old.ID): new.ID for old, new in zip(_cells(lower_row), _cells(head_row),
                                                           strict=True)
                   if "/ID" in old and "/ID" in new}
    bodies = [k for k in _kids(head) if isinstance(k, Dictionary) and k.get("/S") == Name.TBody]
    if not bodies:
        return
    body = bodies[-1]
    for group in _kids(lower):
        if not isinstance(group, Dictionary) or group.get("/S") != Name.TBody:
            continue
        for row in _kids(group):
            if not isinstance(row, Dictionary):
                continue
            row.P = body
            if not isinstance(body.get("/K"), Array):
                body.K = Array(_kids(body))
            body.K.append(row)
            for cell in _kids(row):
                attributes = cell.get("/A") if isinstance(cell, Dictionary) else None
                headers = attributes.get("/Headers") if isinstance(attributes, Dictionary) else None
                if isinstance(headers, Array):
                    attributes.Headers = Array([renamed.get(str(h), h) for h in headers])
    _take_out(lower)


def _move_items(head: Dictionary, lower: Dictionary) -> None:
    """Move lower's list items to the end of head, and take lower out."""
    if not isinstance(head.get("/K"), Array):
        head.K = Array(_kids(head))
    for item in _kids(lower):
        if isinstance(item, Dictionary):
            item.P = head
            head.K.append(item)
    _take_out(lower)


def _take_out(node: Dictionary) -> None:
    """Take an element out of the tree, and any container it leaves empty."""
    while True:
        parent = node.get("/P")
        if not isinstance(parent, Dictionary) or parent.get("/S") is None:
            break
        parent.K = Array([k for k in _kids(parent)
                          if not (isinstance(k, Dictionary) and k.is_indirect
                                  and k.objgen == node.objgen)])
        if len(parent.K) or parent.get("/S") == Name.Document:
            break
        node = parent


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
