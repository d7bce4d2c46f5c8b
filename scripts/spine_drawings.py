"""The spine drawings for tests of several parts, made from the one-part drawings.

templates/images/spine-<part>.svg (cervical, thoracic, lumbar) each shade one
part: a soft band behind it and its vertebrae in colour. The drawing for a
combination (spine-cervical+lumbar.svg, ...) shades every part it names: each
vertebra drawn as in the drawing of the part it belongs to, and the bands of
all its parts in one group whose opacity applies once (where two bands
overlap the shade does not get darker). Sizes stay in print.css; the drawing
keeps the one-part drawings' viewBox.

Run after changing a one-part drawing:

    .venv/bin/python scripts/spine_drawings.py          # write the combinations
    .venv/bin/python scripts/spine_drawings.py --check  # exit 1 if one is stale
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from myelo_docs.schema.record import MultiRegionType, MyelogramType  # noqa: E402

IMAGES = Path(__file__).resolve().parents[1] / "templates" / "images"
SHADE = 'fill="#D9480F"'  # a vertebra of the part a drawing shades
BAND_OPACITY = re.compile(r' stroke-opacity="([0-9.]+)"')


def drawing_lines(part: MyelogramType, images: Path = IMAGES) -> list[str]:
    return (images / f"spine-{part.value}.svg").read_text("utf-8").splitlines()


def combined(kind: MultiRegionType, images: Path = IMAGES) -> str:
    """The SVG text shading every part of ``kind``.

    Raises ValueError when the one-part drawings do not share one outline
    (the same lines in the same order, differing only in what is shaded).
    """
    drawings = {part: drawing_lines(part, images) for part in MyelogramType}
    sizes = {len(lines) for lines in drawings.values()}
    if len(sizes) != 1:
        raise ValueError("the one-part spine drawings do not have the same lines")
    bands: list[str] = []
    out: list[str] = []
    for versions in zip(*(drawings[p] for p in MyelogramType), strict=True):
        chosen = dict(zip(MyelogramType, versions, strict=True))
        band = [chosen[p] for p in kind.regions if BAND_OPACITY.search(chosen[p])]
        if band:
            if not bands:
                out.append("{bands}")  # where the first band was
            bands += band
            continue
        if len(set(versions)) == 1:
            out.append(versions[0])
            continue
        shaded = [chosen[p] for p in kind.regions if SHADE in chosen[p]]
        plain = [v for v in versions if SHADE not in v]
        if not plain or len(set(plain)) != 1:
            raise ValueError("a line differs between the drawings in more than its shading")
        out.append(shaded[0] if shaded else plain[0])
    opacity = BAND_OPACITY.search(bands[0]).group(1)  # type: ignore[union-attr]
    group = "\n".join([f'<g opacity="{opacity}">',
                       *(BAND_OPACITY.sub("", b) for b in bands), "</g>"])
    return "\n".join(group if line == "{bands}" else line for line in out) + "\n"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for kind in MultiRegionType:
        target = IMAGES / f"spine-{kind.value}.svg"
        text = combined(kind)
        if check:
            if not target.is_file() or target.read_text("utf-8") != text:
                stale.append(target.name)
        else:
            target.write_text(text, "utf-8")
            print(f"wrote {target}")
    if stale:
        print("stale: " + ", ".join(stale) + "; run scripts/spine_drawings.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
