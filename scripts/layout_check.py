"""Print how a PDF from myelo-docs is laid out: per page how full the body is,
where each section starts and ends, and which items split over a page end.

    python scripts/layout_check.py packet.pdf [more.pdf ...]

Exits 1 if any list item or table row splits or a heading ends a page.
"""

from __future__ import annotations

import sys
from pathlib import Path

from myelo_docs.verify.layout import read_layout, report


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        layout = read_layout(Path(path).read_bytes())
        print(f"== {path}: {len(layout.pages)} pages")
        print(report(layout))
        if layout.splits:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
