"""Text that was damaged on its way to us: never printed, never "repaired".

Three kinds of damage reach us from real exports and interfaces:

- U+FFFD, the replacement character a decoder writes for bytes it could not
  read: a letter of the name is simply gone.
- Question marks standing for letters: a program wrote the text in a code
  page that had no such letters (``Garc?a``, ``???? ???``).
- Mojibake: UTF-8 read as Windows-1252 or Latin-1 (``SiobhÃ¡n``), found with
  ftfy, a maintained library that knows far more pairs than a table of ours.

The answer is always a stop naming the field: a repaired guess at a patient's
name is still a guess.
"""

from __future__ import annotations

import re
from enum import Enum

_QUESTION_IN_WORD = re.compile(r"\w\?+\w|\?{2,}")


class Damage(Enum):
    """How a value was damaged: the key of its words in messages.toml (the fix is
    text_damaged's)."""

    lost = "damaged_lost"
    question_marks = "damaged_question_marks"
    mojibake = "damaged_mojibake"


def damage(value: str, *, name: bool = False) -> Damage | None:
    """What damage ``value`` shows, or None.

    ``name``: the value is a name or an identifier, where a question mark is
    never right; in free text a question mark is damage only inside a word or
    two or more in a row (``Questions? Call us`` is fine).
    """
    if "\N{REPLACEMENT CHARACTER}" in value:
        return Damage.lost
    if "?" in value and (name or _QUESTION_IN_WORD.search(value)):
        return Damage.question_marks
    if _mojibake(value):
        return Damage.mojibake
    return None


def _mojibake(value: str) -> bool:
    if value.isascii():
        return False
    import ftfy
    from ftfy.badness import is_bad

    # is_bad looks for the tell-tale character sequences; fix_encoding finds
    # text that decodes cleanly one level down (it changes nothing else).
    return is_bad(value) or ftfy.fix_encoding(value) != value
