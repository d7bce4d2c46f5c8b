"""The brand in the packet's language, and numbers and dates as the language is
written in the hospital's country: read from the real PDFs and the nurse page."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pikepdf
import pytest

from conftest import flat, pages_text, record
from myelo_docs.assets import builtin_brands_dir
from myelo_docs.content.loader import locale_for
from myelo_docs.render.engine import Renderer
from myelo_docs.schema.brand import load_brand
from myelo_docs.schema.errors import ConfigError
from myelo_docs.service.web import FormState, NursePage

SPANISH_WORDS = {
    "hospital_name": "Hospital General de Prueba",
    "department": "Departamento de Radiología",
    "logo_alt": "Logotipo del Hospital General de Prueba",
    "address": "Avenida Ejemplo 100, Springfield",
    "website": "es.example.org",
}
MAIN = {"hospital_name": "Demo General Hospital", "department": "Imaging Department"}
SPANISH_RECORD = record(language="es", date_of_birth="1961-03-24")


def brand_file(folder: Path, extra: str = "", spanish: bool = True) -> Path:
    """The demo brand in ``folder``, without its own Spanish words; ``spanish``:
    with SPANISH_WORDS as a [languages.es] table; ``extra``: top-level lines (in
    place of the demo's lines for the same keys)."""
    shutil.copytree(builtin_brands_dir() / "demo", folder)
    given = {line.split("=")[0].strip() for line in extra.splitlines()}
    lines = [line for line in (folder / "brand.toml").read_text().splitlines()
             if not line.startswith("languages.") and line.split("=")[0].strip() not in given]
    text = "\n".join(lines) + "\n" + extra
    if spanish:
        text += "[languages.es]\n" + "".join(f'{k} = "{v}"\n' for k, v in SPANISH_WORDS.items())
    (folder / "brand.toml").write_text(text)
    return folder / "brand.toml"


def renderer_for(folder: Path, **kwargs: object) -> Renderer:
    return Renderer(brand=load_brand(brand_file(folder, **kwargs)))


def texts(pdf: bytes) -> list[str]:
    return [flat(t) for t in pages_text(pdf)]


def figure_alts(pdf: bytes) -> list[str]:
    def walk(node):  # structure elements, in tree order
        k = node.get("/K") if isinstance(node, pikepdf.Dictionary) else None
        for kid in [] if k is None else (k if isinstance(k, pikepdf.Array) else [k]):
            if isinstance(kid, pikepdf.Dictionary) and "/S" in kid:
                yield kid
                yield from walk(kid)

    with pikepdf.open(io.BytesIO(pdf)) as doc:
        return [str(e.get("/Alt", "")) for e in walk(doc.Root.StructTreeRoot)
                if e.S == "/Figure"]


@pytest.fixture(scope="module")
def spanish_brand(tmp_path_factory) -> Renderer:
    return renderer_for(tmp_path_factory.mktemp("es") / "brand")


@pytest.fixture(scope="module")
def spanish_packet(spanish_brand) -> list[str]:
    return texts(spanish_brand.packet(SPANISH_RECORD, full_render=True).pdf)


# -- the brand's words in the packet's language ----------------------------------------


def test_a_spanish_packet_prints_the_brands_spanish_words(spanish_brand, spanish_packet):
    for number, page in enumerate(spanish_packet, start=1):  # the running header
        assert "Hospital General de Prueba" in page, f"page {number}"
        assert "Departamento de Radiología" in page, f"page {number}"
    whole = " ".join(spanish_packet)
    assert SPANISH_WORDS["address"] in whole and SPANISH_WORDS["website"] in whole
    for main in MAIN.values():  # nor through {hospital} in the patient text
        assert main not in whole
    pdf = spanish_brand.packet(SPANISH_RECORD, full_render=True).pdf
    assert SPANISH_WORDS["logo_alt"] in figure_alts(pdf)


def test_the_spanish_words_reach_the_handout_and_not_english_packets(spanish_brand):
    handout = " ".join(texts(spanish_brand.handout("lumbar", "es").pdf))
    assert "Hospital General de Prueba" in handout and "Departamento de Radiología" in handout
    english = spanish_brand.packet(record(), full_render=True).pdf
    whole = " ".join(texts(english))
    assert MAIN["hospital_name"] in whole and MAIN["department"] in whole
    assert not any(word in whole for word in SPANISH_WORDS.values())
    assert "Demo General Hospital logo" in figure_alts(english)


def test_a_word_a_language_leaves_out_is_the_main_one(tmp_path):
    renderer = renderer_for(tmp_path / "brand", spanish=False,
                            extra='languages.es.department = "Departamento de Radiología"\n')
    pages = texts(renderer.packet(SPANISH_RECORD, full_render=True).pdf)
    assert all("Demo General Hospital" in p and "Departamento de Radiología" in p
               for p in pages)
    assert "100 Example Avenue, Springfield" in " ".join(pages)
    assert "Imaging Department" not in " ".join(pages)


def test_without_spanish_words_a_spanish_packet_prints_the_main_ones(tmp_path):
    renderer = renderer_for(tmp_path / "brand", spanish=False)
    pages = texts(renderer.packet(SPANISH_RECORD, full_render=True).pdf)
    assert all(MAIN["hospital_name"] in p and MAIN["department"] in p for p in pages)
    assert "mielografía lumbar" in pages[0]  # still the Spanish packet


def test_the_nurse_page_shows_the_brand_in_the_pages_language(tmp_path):
    page = NursePage(load_brand(brand_file(tmp_path / "brand")))
    spanish, english = page.html(FormState(), "es"), page.html(FormState(), "en")
    for word in ("hospital_name", "department", "logo_alt"):
        assert SPANISH_WORDS[word] in spanish and SPANISH_WORDS[word] not in english
    assert MAIN["department"] in english and MAIN["department"] not in spanish


# -- numbers and dates: the language as written in the brand's country -----------------


def test_us_spanish_writes_a_decimal_point_and_spanish_dates(spanish_packet):
    whole = " ".join(spanish_packet)
    assert "100.0 °F (37.8 °C)" in whole  # CLDR es-US, as US Spanish readers write it
    assert not re.search(r"\d,\d", whole)  # no decimal comma anywhere
    for number, page in enumerate(spanish_packet, start=1):
        assert "24 de marzo de 1961" in page, f"date of birth on page {number}"
    assert "25 de noviembre de 2026" in whole


@pytest.mark.parametrize(("country", "fever"), [
    ("ES", "100,0 °F (37,8 °C)"),  # Spain: a decimal comma
    ("MX", "100.0 °F (37.8 °C)"),  # Mexico: a point, like US Spanish
])
def test_a_brand_in_another_country_writes_numbers_as_that_country_does(tmp_path, country,
                                                                        fever):
    renderer = renderer_for(tmp_path / "brand", extra=f'country = "{country}"\n')
    for document in (renderer.packet(SPANISH_RECORD), renderer.packet(SPANISH_RECORD,
                                                                    full_render=True)):
        whole = " ".join(texts(document.pdf))
        assert fever in whole
        assert "24 de marzo de 1961" in whole
        # Screen readers pick their voice by the document's language: Spanish of Spain
        # or of Mexico, as the numbers are written.
        with pikepdf.open(io.BytesIO(document.pdf)) as pdf:
            assert str(pdf.Root.Lang) == f"es-{country}", document.path


def test_a_british_brand_writes_english_dates_day_first_on_either_path(tmp_path):
    british = renderer_for(tmp_path / "gb" / "brand", extra='country = "GB"\n')
    american = renderer_for(tmp_path / "us" / "brand")
    for document in (british.packet(record()), british.packet(record(), full_render=True)):
        pages = texts(document.pdf)
        assert all("14 July 1958" in page for page in pages), document.path
        assert "25 November 2026" in " ".join(pages)
    us = texts(american.packet(record(), full_render=True).pdf)
    assert all("July 14, 1958" in page for page in us) and "14 July" not in " ".join(us)


def test_a_country_cldr_has_no_data_for_falls_back_to_the_language():
    assert locale_for("es", "US") == "es_US"
    assert locale_for("es", "GB") == "es"  # CLDR has no es_GB: Spanish as CLDR's es writes it


# -- bad brand files: the key, the problem and the fix ---------------------------------


@pytest.mark.parametrize(("extra", "message"), [
    ('[languages.esp]\ndepartment = "x"\n',
     "brand languages esp: 'esp' is not a language with patient text. Fix: did you mean 'es'?"),
    ('[languages.es-US]\ndepartment = "x"\n',
     "did you mean 'es'? (the country goes in 'country')"),
    ('[languages.fr]\ndepartment = "x"\n', "Fix: languages are: en, es"),
    ('[es]\ndepartment = "x"\n',
     "brand es: is a language given as [es]. Fix: write its table as [languages.es]"),
    ('[languages.es]\ndepartmnet = "x"\n', "brand languages es departmnet: is not a key a "
                                           "language can give. Fix: did you mean 'department'?"),
    ('[languages.es]\ndepartment_phone = "x"\n',
     "'department_phone' is the same in every language: give it once"),
    ('[languages.es]\nhospital_name = ""\n', "brand languages es hospital_name: is empty"),
    (f'[languages.es]\ndepartment = "{"x" * 101}"\n',
     "brand languages es department: is longer than 100 characters"),
    ("languages.es = 3\n", "brand languages es: must be a table of words"),
    ('country = "UK"\n', "brand country: 'UK' is not a country code. Fix: use GB"),
    ('country = "USA"\n', "Fix: give the two-letter ISO 3166 code, like US, MX or ES"),
])
def test_bad_language_words_and_countries_are_named_with_their_fix(tmp_path, extra, message):
    with pytest.raises(ConfigError) as caught:
        load_brand(brand_file(tmp_path / "brand", extra=extra, spanish=False))
    assert message in str(caught.value)


def test_a_country_in_any_case_is_accepted(tmp_path):
    assert load_brand(brand_file(tmp_path / "brand", extra='country = " mx"\n')).country == "MX"


def test_a_spanish_word_no_font_can_draw_is_refused_before_any_packet(tmp_path):
    with pytest.raises(ConfigError) as caught:
        renderer_for(tmp_path / "brand", spanish=False,
                     extra='languages.es.department = "Radiología 王"\n')
    assert "brand languages es department" in str(caught.value)
