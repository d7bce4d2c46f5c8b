"""Every language has the same content keys; the Spanish packet and handout read as Spanish."""

from __future__ import annotations

import io
import re
import tomllib
import unicodedata
from typing import Any

import pytest
from pypdf import PdfReader

from myelo_docs.assets import content_dir
from myelo_docs.content.loader import CONTENT_FILES
from myelo_docs.schema.languages import available_languages

TYPES = ("cervical", "thoracic", "lumbar")
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")

SPANISH_RECORD = {
    "patient_name": "María José Pérez",
    "date_of_birth": "1961-03-24",
    "mrn": "ES-5582017",
    "procedure_date": "2026-11-25",
    "language": "es",
    "medications": [{"name": "Warfarina", "instruction": "Reanude el 27 de noviembre"}],
}
SPANISH_TYPE_NAME = {"cervical": "cervical", "thoracic": "torácica", "lumbar": "lumbar"}

# Sentences and labels a user would recognise if English leaked into a Spanish packet.
ENGLISH_TEXT = [
    "Questions or problems? Call us.",
    "Caring for yourself at home",
    "What is a spinal headache?",
    "Call us if you have any of these",
    "A myelogram is a test that takes pictures of your spine.",
    "Tell your team if you cannot lie on your stomach.",
    "You will learn when to call for help.",
    "The doctor usually puts the needle in your lower back.",
    "Your medicines",
    "Please sign",
    "Nurse signature",
    "Date of birth",
    "Page 1 of",
]
# Brand strings of the demo brand are the only English a Spanish page may carry.
ENGLISH_WORDS = re.compile(r"\b(the|your|you|and|with|call|page|nurse|doctor)\b", re.I)
BRAND_TEXT = ("Demo General Hospital", "Imaging Department")


def read_content(language: str) -> dict[str, Any]:
    folder = content_dir() / language
    return {name: tomllib.loads((folder / f"{name}.toml").read_text("utf-8"))
            for name in CONTENT_FILES}


def key_paths(node: Any, path: str = "") -> set[str]:
    """Every key path; list items are merged (length may differ), sections go by id."""
    paths: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            paths.add(f"{path}.{key}")
            paths |= key_paths(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict) and "id" in item:
                paths |= key_paths(item, f"{path}[id={item['id']}]")
            else:
                paths |= key_paths(item, f"{path}[]")
    return paths


def placeholders(node: Any, path: str = "", found: dict[str, set[str]] | None = None
                 ) -> dict[str, set[str]]:
    """Placeholders used under each key path (list items merged, as above)."""
    found = {} if found is None else found
    if isinstance(node, str):
        found.setdefault(path, set()).update(PLACEHOLDER.findall(node))
    elif isinstance(node, dict):
        for key, value in node.items():
            placeholders(value, f"{path}.{key}", found)
    elif isinstance(node, list):
        for item in node:
            sub = f"{path}[id={item['id']}]" if isinstance(item, dict) and "id" in item else path
            placeholders(item, sub, found)
    return found


OTHER_LANGUAGES = [lang for lang in available_languages() if lang != "en"]


def test_spanish_is_one_of_the_languages():
    assert "es" in OTHER_LANGUAGES


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
@pytest.mark.parametrize("name", CONTENT_FILES)
def test_same_keys_as_english(language, name):
    english = key_paths(read_content("en")[name])
    other = key_paths(read_content(language)[name])
    assert not english - other, f"{language}/{name}.toml lacks {sorted(english - other)}"
    assert not other - english, f"{language}/{name}.toml has extra {sorted(other - english)}"


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
@pytest.mark.parametrize("name", CONTENT_FILES)
def test_same_placeholders_as_english(language, name):
    english = placeholders(read_content("en")[name])
    other = placeholders(read_content(language)[name])
    differ = {path: (sorted(english.get(path, ())), sorted(used))
              for path, used in other.items() if used != english.get(path, set())}
    assert not differ, f"{language}/{name}.toml placeholders (English, {language}): {differ}"


def test_spanish_labels_name_the_language():
    labels = read_content("es")["labels"]
    assert labels["meta"]["language"] == "es"


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(pdf)).pages]


def flat(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def assert_no_english(whole: str) -> None:
    for sentence in ENGLISH_TEXT:
        assert sentence not in whole, f"English text in a Spanish PDF: {sentence!r}"
    for brand in BRAND_TEXT:
        whole = whole.replace(brand, "")
    leaked = sorted({m.group(0) for m in ENGLISH_WORDS.finditer(whole)})
    assert not leaked, f"English words in a Spanish PDF: {leaked}"


@pytest.fixture(scope="module")
def spanish_packets(renderer):
    return {t: renderer.packet({**SPANISH_RECORD, "type": t}) for t in TYPES}


@pytest.mark.parametrize("kind", TYPES)
def test_spanish_packet_pages(spanish_packets, kind):
    document = spanish_packets[kind]
    texts = [flat(t) for t in pages_text(document.pdf)]
    assert len(texts) == document.pages >= 5
    for number, page in enumerate(texts, start=1):
        assert f"Página {number} de {len(texts)}" in page, f"page {number} numbering"
        assert "María José Pérez" in page, f"name missing on page {number}"
        assert "24 de marzo de 1961" in page, f"date of birth missing on page {number}"
        assert SPANISH_RECORD["mrn"] in page, f"MRN missing on page {number}"

    type_name = f"mielografía {SPANISH_TYPE_NAME[kind]}"
    whole = " ".join(texts)
    assert "¿Tiene preguntas o problemas? Llámenos." in texts[0]
    assert f"Al volver a casa después de su {type_name}" in texts[0]
    headings = [
        "Llame al 911 o vaya a la sala de emergencias",
        "Llámenos si le pasa algo de esto",
        "Cómo cuidarse en casa",
        "¿Qué es el dolor de cabeza espinal?",
        "Sus medicinas",
        f"Sobre su {type_name}",
        *(s["title"] for s in read_content("es")["handout"]["sections"]),
        "Por favor, firme",
    ]
    positions = [whole.index(h) for h in headings]
    assert positions == sorted(positions)
    assert "Warfarina" in whole and "Reanude el 27 de noviembre" in whole
    assert "25 de noviembre de 2026" in whole
    assert "100.0 °F (37.8 °C)" in whole and "24 horas" in whole  # es-US: a decimal point
    assert "Firma de enfermería" in texts[-1]
    assert_no_english(whole)

    reader = PdfReader(io.BytesIO(document.pdf))
    assert reader.trailer["/Root"]["/Lang"] == "es-US"
    assert type_name in reader.metadata.title.lower()


def test_spanish_handout(renderer):
    document = renderer.handout("thoracic", "es")
    texts = [flat(t) for t in pages_text(document.pdf)]
    assert "Su mielografía torácica: qué puede esperar" in texts[0]
    for number, page in enumerate(texts, start=1):
        assert f"Página {number} de {len(texts)}" in page
        assert "Nombre:" not in page and "Fecha de nacimiento" not in page
    whole = " ".join(texts)
    for title in (s["title"] for s in read_content("es")["handout"]["sections"]):
        assert title in whole, title
    assert "el pecho, la barriga o las piernas" in whole
    assert "¿Qué es el dolor de cabeza espinal?" in whole
    assert_no_english(whole)
