"""``myelo-docs site init DIR``: a new site folder, commented, from our defaults.

The brand is our demo brand's file and logo; the protocol file is our
protocol file (read now, so choices added to it appear) with every setting
commented out, so each keeps our default until the hospital changes it.
"""

from __future__ import annotations

import re
import shutil
from datetime import date
from pathlib import Path

from myelo_docs.assets import builtin_brands_dir, default_protocol_file
from myelo_docs.schema.errors import OutputError, Problem
from myelo_docs.schema.languages import available_languages
from myelo_docs.site import SITE_FILE

SITE_TEMPLATE = """\
# This folder is one hospital's setup of myelo-docs (its "site").
# Give it to any command with --site {folder} (or set the environment variable
# MYELO_DOCS_SITE={folder}): packet, handout, batch, validate, serve.
# A flag given on the command line beats the value here; a value here beats
# our default. After every edit, run:  myelo-docs site check {folder}

name = "{name}"              # how `site check` names this site (the printed name is in brand.toml)

# The languages nurses may choose. [] = every language myelo-docs has, plus any
# you add under content/. We ship: {languages}.
languages = [{offered}]

[files]
# This site's other files, relative to this folder. Without a line, the file of
# that name in this folder is used if present, else our default.
brand = "brand.toml"         # hospital name, logo, colours, phone numbers
protocol = "protocol.toml"   # the numbers and choices of your protocol
# fonts = "fonts"            # a folder of extra .ttf/.otf fonts (scripts ours lack)

[content]
# Your changes to the patient text: content/<language>/<file>.toml, key by key
# (content/README.txt says how). Without any, our text is printed.
folder = "content"
# The day your clinical reviewer signed off your text changes. Printed on every
# page ("Text reviewed") once you change any text; needed from then on.
# text_reviewed = {today}
reviewed_by = ""

[identity]
# The FHIR identifier system(s) of your medical record number, and the shape
# every MRN must have in full (a regular expression; catches MRNs a spreadsheet
# cut the leading zeros off).
mrn_systems = []
# mrn_pattern = "[0-9]{{8}}"

[csv]
# How your CSV exports are read (batch, validate).
# encoding = "cp1252"          # default: UTF-8 (a byte-order mark is always read)
# columns = "columns.toml"     # a column map: your export's headers -> our fields

[output]
# paper = "a4"                 # letter or a4; default: the brand's paper
large_print = false            # large print (18 pt) unless a record says otherwise
# file_name_pattern = "packet-{{procedure_date}}-{{key}}"   # batch file names
"""

CONTENT_README = """\
Your changes to the patient text
================================

Put a file here only for the text you change; everything else stays ours
(and gets our updates). The layout is content/<language>/<file>.toml, where
<file> is labels, handout, discharge or types, as in our own text:

    {ours}

A file names only the keys it changes. For example, to change the title of
the home-care section in English, write content/en/discharge.toml:

    [home]
    title = "Looking after yourself at home"

Rules (`myelo-docs site check` checks all of them):

- A table changes key by key. A list (the paragraphs of a section, a list of
  items) is replaced whole: copy ours and edit it.
- The handout's [[sections]] and the figures are matched by their id: give
  the id and only the keys you change.
- Keep every {{placeholder}} our text has for that key (a number or a phone
  number from the settings is filled in there: never type it yourself). Only
  placeholders we know may be used.
- A language of your own (a folder for a language we do not ship) needs every
  file and every key our English has.
- Once you change any text, set text_reviewed in site.toml [content]: the
  date your clinical reviewer signed it off. It is printed on every page.
- Keep the text plain: short sentences, "you", everyday words. `site check`
  measures the reading level, and checks that every topic a patient needs is
  still there, in every language you offer.
"""


def init_site(folder: Path, force: bool = False, today: date | None = None) -> list[Path]:
    """Write a commented site folder; returns the files written.

    Raises OutputError when ``folder`` is a file, or is not empty and ``force``
    is not given (then only our files are replaced; others are left alone).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError("The site folder is a file", [
            Problem("DIR", f"{folder} is a file", "give a new or empty folder")])
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise OutputError("The site folder is not empty", [
            Problem("DIR", f"{folder} already has files",
                    "give a new or empty folder, or add --force to replace the files "
                    "`site init` writes (others are left alone)")])
    folder.mkdir(parents=True, exist_ok=True)
    day = (today or date.today()).isoformat()
    demo = builtin_brands_dir() / "demo"
    languages = available_languages()
    written = {
        folder / SITE_FILE: SITE_TEMPLATE.format(
            folder=folder, name="My Hospital", today=day, languages=", ".join(languages),
            offered=", ".join(f'"{code}"' for code in languages)),
        folder / "brand.toml": brand_text((demo / "brand.toml").read_text(encoding="utf-8")),
        folder / "protocol.toml": protocol_text(
            default_protocol_file().read_text(encoding="utf-8"), day),
        folder / "content" / "README.txt": CONTENT_README.format(
            ours=(Path(__file__).parent.parent / "content").as_posix()),
    }
    for path, text in written.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    logo = folder / "logo.svg"
    shutil.copyfile(demo / "logo.svg", logo)
    return [*written, logo]


def brand_text(demo: str) -> str:
    """Our demo brand's file, as the start of a hospital's own."""
    lines = [line for line in demo.splitlines() if not line.startswith("# The built-in")
             and not line.startswith("# Copy this folder")]
    header = [
        "# This hospital's brand: its name, logo, colours and phone numbers, printed on",
        "# every page. Replace every value (these are our made-up demo hospital's).",
        "# - logo: an .svg or .png file in this folder (replace logo.svg).",
        "# - colours: #RRGGBB, dark enough to read on white paper (contrast 4.5:1 or more).",
        "# - phones: as a patient dials them; after_hours_phone must answer at night,",
        "#   on weekends and holidays.",
        "# - paper: letter or a4 (site.toml [output] paper, or --paper, beats it).",
    ]
    return "\n".join(header + lines) + "\n"


_SETTING = re.compile(r"^([a-z_]+)\s*=")


def protocol_text(default: str, day: str) -> str:
    """Our protocol file with every setting commented out (each keeps our default
    until its # is removed); only ``version`` is set, to this site's own."""
    out = [
        "# This hospital's protocol. Every setting below is commented out, so it keeps",
        "# our default (the value shown). To change one, remove the # before its line",
        "# (and before every line of a list) and edit the value. Settings left out keep",
        "# our default, including ones added in later versions of myelo-docs.",
        "",
        "# Name this version of your protocol: it is kept in every PDF, so you can",
        "# tell later which settings a patient's packet was made with.",
        f'version = "site-{day}"',
        "",
    ]
    in_value = False
    for line in default.splitlines():
        match = _SETTING.match(line)
        if match and match.group(1) == "version":
            continue
        if match or in_value:
            out.append("# " + line if line else line)
            in_value = (in_value or bool(match)) and _opens_list(line, in_value)
        else:
            out.append(line)
    return "\n".join(out).rstrip() + "\n"


def _opens_list(line: str, in_value: bool) -> bool:
    """Whether a multi-line value goes on after this line (a [ not yet closed)."""
    code = line.split("#", 1)[0]
    if in_value:
        return not code.strip().startswith("]")
    return code.count("[") > code.count("]")
