"""The patient text says one thing, whatever the hospital chooses.

Packets and handouts are rendered for each protocol choice and read back from
the PDFs: no sentence contradicts the position rule; the two warning lists
never share a symptom a reader could not place; the late dye reaction is
there; each choice prints its own sentence; the content files of every
language carry the same choices.
"""

from __future__ import annotations

import io
import re
import tomllib
import unicodedata
from typing import Any

import pikepdf
import pytest
from pypdf import PdfReader

from conftest import BASE_RECORD
from myelo_docs import get_renderer
from myelo_docs.assets import content_dir
from myelo_docs.content.loader import CONTENT_FILES, Content, load_content, localised
from myelo_docs.schema.brand import load_brand
from myelo_docs.schema.errors import ConfigError
from myelo_docs.schema.protocol import choices, load_protocol

LANGUAGES = ("en", "es")
# Every type the text has: one part of the spine, or several ("cervical+lumbar").
TYPES = tuple(tomllib.loads((content_dir() / "en" / "types.toml").read_text("utf-8")))

# Three protocols that together make every choice at least once.
PROTOCOLS = {
    "default": "",
    "flat": ('position = "flat"\nfasting = "midnight"\nshower = "hours"\nshower_hours = 48\n'
             'metformin = "hold"\nseizure_medicine_plan = "ask"\ncervical_route = "neck"\n'
             "no_lifting_hours = 72\n"),
    "none": 'position = "none"\nfasting = "none"\n',
}
POSITION = {"default": "raised", "flat": "flat", "none": "none"}

# Contradiction rules, per language and position choice: a sentence matching
# `forbidden` contradicts the choice, unless it matches `unless` ({time} is the
# position time as printed, e.g. "24 hours").
CONTRADICTIONS: dict[str, dict[str, list[tuple[str, str | None]]]] = {
    "en": {
        "raised": [(r"\b(lie|lying|lies) (down|flat)\b",
                    r"\b(do not|don't|not)\b|\bafter {time}\b")],
        "flat": [(r"\bhead (and shoulders )?(still )?raised\b|\braise your head\b"
                  r"|\bdo not lie flat\b|\bpillows\b", None)],
        "none": [(r"\bdo not lie flat\b|\bhead (and shoulders )?(still )?raised\b"
                  r"|\blie flat (on your back )?for\b", None)],
    },
    "es": {
        "raised": [(r"\b(acu[eé]stese|acostarse|se acuesta)\b|\bcabeza baja\b|\bsin almohada\b",
                    r"\bno\b|\bdespués de {time}\b|\bboca abajo\b")],
        "flat": [(r"\ben alto\b|\bno se acueste\b|\balmohadas\b", None)],
        "none": [(r"\ben alto\b|\bno se acueste\b|\bsin almohada,? durante\b", None)],
    },
}
# The sentence each position choice must print.
POSITION_TEXT = {
    "en": {"raised": "Keep your head and shoulders raised for 24 hours",
           "flat": "Lie flat on your back for 24 hours",
           "none": "You do not need to lie in any special way"},
    "es": {"raised": "Tenga la cabeza y los hombros en alto durante 24 horas",
           "flat": "Acuéstese boca arriba, sin almohada, durante 24 horas",
           "none": "No tiene que acostarse de ninguna forma especial"},
}
POSITION_TIME = {"en": "24 hours", "es": "24 horas"}

# The sentence each other choice prints (protocol name -> language -> texts).
CHOICE_TEXT = {
    "default": {
        "en": ["Do not eat for 4 hours before the test", "You may shower once the bandage is off",
               "Do not bend over, strain or lift heavy things for 24 hours",
               "you can most likely keep taking it", "promethazine (Phenergan)",
               "from 2 days before the test until 24 hours after",
               "The doctor usually puts the needle in your lower back"],
        "es": ["no coma nada durante 4 horas antes de la prueba",
               "Puede bañarse en la ducha cuando ya se haya quitado la curita",
               "no levante cosas pesadas durante 24 horas",
               "lo más probable es que pueda seguir tomándola", "prometazina (Phenergan)",
               "desde 2 días antes de la prueba hasta 24 horas después",
               "Por lo general, el médico pone la aguja en la parte baja de la espalda"],
    },
    "flat": {
        "en": ["Do not eat after midnight the night before the test", "You may shower after 2 days",
               "Do not bend over, strain or lift heavy things for 3 days",
               "Rest for at least 24 hours",
               "do not take it on the day of the test or for 2 days after",
               "Your care team will tell you if you need to stop any of yours",
               "The doctor puts the needle in the side of your upper neck",
               "slurred speech"],
        "es": ["no coma nada después de la medianoche",
               "Puede bañarse en la ducha después de 2 días",
               "no levante cosas pesadas durante 3 días", "Descanse por lo menos 24 horas",
               "no la tome el día de la prueba ni durante 2 días después",
               "Su equipo de atención le dirá si tiene que dejar de tomar alguna",
               "El médico pone la aguja en un lado de la parte alta del cuello",
               "Habla arrastrando las palabras"],
    },
    "none": {
        "en": ["You can eat as usual before the test"],
        "es": ["Puede comer como siempre antes de la prueba"],
    },
}
# Text that belongs to one choice only: printed under another, it is a mistake.
NOT_WITH = {
    "default": {"en": ["after midnight", "eat as usual", "slurred speech",
                       "side of your upper neck, just below"],
                "es": ["medianoche", "como siempre antes", "arrastrando las palabras"]},
    "flat": {"en": ["Do not eat for 4 hours", "once the bandage is off", "promethazine",
                    "In some cases, the doctor puts the needle"],
             "es": ["durante 4 horas antes", "ya se haya quitado la curita", "prometazina",
                    "A veces, el médico pone la aguja"]},
    "none": {"en": ["Do not eat for", "after midnight"], "es": ["durante 4 horas antes",
                                                               "medianoche"]},
}

# The late reaction to the dye: in the warning list and in the risks.
LATE_REACTION = {
    "en": ["You get a rash, hives or itching after the test", "a late reaction to the dye",
           "A reaction to the dye can also come late"],
    "es": ["Le sale un sarpullido, ronchas o picazón después de la prueba",
           "una reacción tardía al tinte", "La reacción al tinte también puede llegar tarde"],
}

# Warning tiers. Each symptom has a pattern; a symptom named in both lists must
# carry, in every item that names it, the words of its own list (call us:
# mild, not spreading, ...; emergency: spreads, sudden, ...), so a reader can
# tell which list it belongs to. Phrases that deny a symptom ("with no
# weakness") do not name it.
NEGATION = {"en": r"\b(with no|without)\b[^,.]*", "es": r"\bsin\b[^,.]*"}
SYMPTOMS: dict[str, dict[str, tuple[str, str | None, str | None]]] = {
    # symptom: (pattern, call-us qualifier, emergency qualifier)
    "en": {
        "weakness": (r"\bweak", None, None),
        "numbness": (r"\bnumb|\btingl", r"\bmild\b.*\bnot spreading\b",
                     r"\bspreads\b|\bgroin\b|\blegs feel weak or numb\b"),
        "walking": (r"\bwalking\b|\bbalance\b", None, None),
        "back pain": (r"\bback (or neck )?pain\b", r"\bwith no weakness or numbness\b",
                      r"\blegs feel weak or numb\b"),
        "fever": (r"\bfever\b", r"\bwithout a stiff neck\b", r"\bstiff neck and a fever\b"),
        "headache": (r"\bheadache\b", r"\bmedicine does not help\b|\blasts more than\b",
                     r"\bno longer gets better\b|\bdouble vision\b|\bhearing\b"),
        "vomiting": (r"\bthrow(ing)? up\b|\bvomit", r"\bwith no bad headache\b", r"\bheadache\b"),
        "swelling": (r"\bswell|\bswollen\b", r"\bneedle spot\b", r"\bface or throat\b"),
        "rash": (r"\brash\b|\bhives\b|\bitch", None, None),
        "bladder": (r"\burine\b|\bstool\b|\bbladder\b", None, None),
        "confusion": (r"\bconfused\b", None, None),
        "seizure": (r"\bseizure\b", None, None),
        "breathing": (r"\bbreathing\b", None, None),
        "stiff neck": (r"\bstiff neck\b", None, None),
    },
    "es": {
        "weakness": (r"\bdébil|\bdebilidad\b", None, None),
        "numbness": (r"\bdormid|\bse le duerm|\bhormigueo\b",
                     r"\bun poco dormidos\b.*\bno se extiende\b",
                     r"\by eso se extiende\b|\bingle\b|\bpiernas débiles o dormidas\b"),
        "walking": (r"\bcaminar\b|\bequilibrio\b", None, None),
        "back pain": (r"\bdolor de espalda\b", r"\bsin debilidad\b",
                      r"\bpiernas débiles o dormidas\b"),
        "fever": (r"\bfiebre\b", r"\bsin el cuello tieso\b", r"\bcuello tieso y fiebre\b"),
        "headache": (r"\bdolor de cabeza\b", r"\bla medicina no se lo quita\b|\bdura más de\b",
                     r"\bya no mejora\b|\bvisión doble\b|\boye\b"),
        "vomiting": (r"\bvomit|\bvómito", r"\bsin un dolor de cabeza fuerte\b",
                     r"\bdolor de cabeza\b"),
        "swelling": (r"\bhinch", r"\blugar de la aguja\b", r"\bcara o la garganta\b"),
        "rash": (r"\bsarpullido\b|\bronchas\b|\bpica", None, None),
        "bladder": (r"\borina\b|\borinar\b|\bexcremento\b|\bvejiga\b", None, None),
        "confusion": (r"\bconfundid", None, None),
        "seizure": (r"\bconvulsión\b", None, None),
        "breathing": (r"\brespirar\b", None, None),
        "stiff neck": (r"\bcuello tieso\b", None, None),
    },
}
TIER_WORDS = {"en": r"\bcall\b|\b911\b", "es": r"\bllam|\b911\b"}


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def body_text(pdf: bytes) -> str:
    """The text a reader follows, pages joined: bullets, running headers and
    footers left out, so a sentence that crosses a page reads as one."""
    noise = re.compile(r"^(•\s*)+$|^(Name|Nombre|Date of birth|Fecha de nacimiento|MRN|N\.º de"
                       r" expediente):|^(Text reviewed|Texto revisado):|^(Page|Página) \d+ (of|de)"
                       r" \d+$|^Demo General Hospital$|^Imaging Department$"
                       r"|^Departamento de Imágenes$")
    lines = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for line in nfc(page.extract_text() or "").splitlines():
            line = re.sub(r"(\s*•)+\s*$", "", line.strip())
            if line and not noise.search(line):
                lines.append(line)
    return " ".join(" ".join(lines).split())


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?:])\s+", text) if s]


def contradictions(text: str, language: str, position: str) -> list[str]:
    found = []
    for forbidden, unless in CONTRADICTIONS[language][position]:
        allowed = (re.compile(unless.format(time=POSITION_TIME[language]), re.I)
                   if unless else None)
        for sentence in sentences(text):
            if re.search(forbidden, sentence, re.I) and not (
                    allowed and allowed.search(sentence)):
                found.append(sentence)
    return found


def protocol_file(tmp_path_factory, name: str):
    path = tmp_path_factory.mktemp(f"protocol-{name}") / "protocol.toml"
    path.write_text(f'version = "test-{name}"\n' + PROTOCOLS[name], "utf-8")
    return path


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    """(protocol name, language, "packet" | "handout") -> PDF bytes, cervical type
    (the type with the most position and route text)."""
    out = {}
    for name in PROTOCOLS:
        renderer = get_renderer(protocol=protocol_file(tmp_path_factory, name))
        for language in LANGUAGES:
            record = {**BASE_RECORD, "type": "cervical", "language": language}
            out[name, language, "packet"] = renderer.packet(record).pdf
            out[name, language, "handout"] = renderer.handout("cervical", language).pdf
    return out


@pytest.mark.parametrize("kind", ["packet", "handout"])
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", PROTOCOLS)
def test_no_sentence_contradicts_the_position_choice(documents, name, language, kind):
    text = body_text(documents[name, language, kind])
    position = POSITION[name]
    assert POSITION_TEXT[language][position] in text
    assert not contradictions(text, language, position), contradictions(text, language, position)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_contradiction_rules_catch_a_contradiction(language):
    """The rules are not empty words: the old "lie down" headache advice fails them."""
    old = {"en": "Keep your head raised for 24 hours. Do not lie flat. Lie down and rest.",
           "es": "Tenga la cabeza en alto durante 24 horas. Acuéstese y descanse."}[language]
    assert len(contradictions(old, language, "raised")) == 1
    assert contradictions(old, language, "flat") and contradictions(old, language, "none")
    assert not contradictions(POSITION_TEXT[language]["flat"] + ".", language, "flat")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", PROTOCOLS)
def test_the_position_drawing_matches_the_choice(documents, name, language):
    figures = load_content(language).data["discharge"]["home"]["figures"]
    alts = {f["id"]: f["alt"] for f in figures}
    with pikepdf.open(io.BytesIO(documents[name, language, "packet"])) as pdf:
        printed = [nfc(str(node.get("/Alt", ""))) for node in _walk(pdf.Root.StructTreeRoot)
                   if node.get("/S") == "/Figure"]
    wanted = {"raised": "rest-head-raised", "flat": "rest-flat", "none": None}[POSITION[name]]
    for figure_id, alt in alts.items():
        assert (nfc(alt) in printed) == (figure_id == wanted), (figure_id, printed)


def _walk(node):
    kids = node.get("/K")
    if kids is None:
        return
    for kid in (kids if isinstance(kids, pikepdf.Array) else [kids]):
        if isinstance(kid, pikepdf.Dictionary):
            yield kid
            yield from _walk(kid)


@pytest.mark.parametrize("kind", ["packet", "handout"])
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", PROTOCOLS)
def test_each_choice_prints_its_own_text(documents, name, language, kind):
    text = body_text(documents[name, language, kind])
    folded = " ".join(text.replace("*", "").split())
    for expected in CHOICE_TEXT[name][language]:
        assert nfc(expected) in folded, expected
    for wrong in NOT_WITH[name][language]:
        assert nfc(wrong) not in folded, wrong


@pytest.mark.parametrize("kind", ["packet", "handout"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_late_dye_reaction_is_printed(documents, language, kind):
    text = body_text(documents["default", language, kind])
    for expected in LATE_REACTION[language]:
        assert nfc(expected) in text, expected


# Why sudden weakness is an emergency (the brief, section 14): told with the sign.
BLEEDING_REASON = {
    "en": "sudden trouble walking or keeping your balance. Bleeding near your spine can press "
          "on your spinal cord and cause this.",
    "es": "de repente camina mal o pierde el equilibrio. Un sangrado cerca de la columna puede "
          "apretar la médula espinal y causar esto.",
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_emergency_list_says_why_sudden_weakness_is_an_emergency(documents, language):
    text = body_text(documents["default", language, "packet"])
    folded = " ".join(text.replace("*", "").split())
    assert nfc(BLEEDING_REASON[language]) in folded


def tier_lists(language: str, type_name: str, protocol) -> dict[str, list[str]]:
    text = localised(load_content(language), type_name, protocol, load_brand())
    plain = {tier: [nfc(str(item)) for item in text["discharge"][tier]["items"]]
             for tier in ("call_us", "emergency")}
    plain["home_note"] = [nfc(str(item)) for item in text["types"][type_name]["home_note"]]
    plain["summary"] = [nfc(str(item)) for item in text["labels"]["labels"]["summary"]]
    return plain


def named(item: str, language: str) -> set[str]:
    """The symptoms an item names (denied ones left out)."""
    affirmed = re.sub(NEGATION[language], "", item, flags=re.I)
    return {name for name, (pattern, _, _) in SYMPTOMS[language].items()
            if re.search(pattern, affirmed, re.I)}


def tier_problems(lists: dict[str, list[str]], language: str) -> list[str]:
    problems = []
    found = {tier: {name for item in lists[tier] for name in named(item, language)}
             for tier in ("call_us", "emergency")}
    for symptom in found["call_us"] & found["emergency"]:
        _, call_words, emergency_words = SYMPTOMS[language][symptom]
        if call_words is None:
            problems.append(f"{symptom}: in both lists")
            continue
        for tier, words in (("call_us", call_words), ("emergency", emergency_words)):
            for item in lists[tier]:
                if symptom in named(item, language) and not re.search(words, item, re.I):
                    problems.append(f"{symptom}: {tier} item does not say which: {item!r}")
    return problems


def _protocol(**choices_made: str):
    return load_protocol().model_copy(update=choices_made)


@pytest.mark.parametrize("route", ["lower_back", "neck"])
@pytest.mark.parametrize("type_name", TYPES)
@pytest.mark.parametrize("language", LANGUAGES)
def test_no_symptom_is_in_both_warning_lists(documents, language, type_name, route):
    lists = tier_lists(language, type_name, _protocol(cervical_route=route))
    assert not tier_problems(lists, language)

    # The home notes say what to watch, never which list: a symptom is sorted once.
    for note in lists["home_note"]:
        assert not re.search(TIER_WORDS[language], note, re.I), note
    # The summary's two lines name only symptoms of their own list.
    call_line, emergency_line = lists["summary"][-1], lists["summary"][-2]
    for line, tier in ((call_line, "call_us"), (emergency_line, "emergency")):
        listed = {name for item in lists[tier] for name in named(item, language)}
        assert named(line, language) <= listed, (line, named(line, language) - listed)

    # Every item is printed as written (the cervical packets were rendered).
    if type_name == "cervical":
        name = "default" if route == "lower_back" else "flat"
        text = body_text(documents[name, language, "packet"])
        for item in lists["call_us"] + lists["emergency"]:
            assert item in text, item


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_tier_rule_catches_a_symptom_in_both_lists(language):
    """The old call-us item (weakness next to tingling) fails the rule."""
    lists = tier_lists(language, "lumbar", load_protocol())
    old = {"en": "You have numbness, tingling or weakness in your legs or feet.",
           "es": "Siente las piernas o los pies dormidos, con hormigueo o débiles."}[language]
    lists["call_us"].append(old)
    problems = tier_problems(lists, language)
    assert any(p.startswith("weakness") for p in problems), problems
    assert any(p.startswith("numbness") for p in problems), problems


def raw(language: str) -> dict[str, Any]:
    folder = content_dir() / language
    return {name: tomllib.loads((folder / f"{name}.toml").read_text("utf-8"))
            for name in CONTENT_FILES}


def conditions(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """(where, condition) of every `when` and `only`, in order."""
    found = []
    if isinstance(node, dict):
        for key in ("when", "only"):
            if key in node:
                found.append((path, (key, node[key])))
        for key, value in node.items():
            if key not in ("when", "only"):
                found += conditions(value, f"{path}.{key}")
    elif isinstance(node, list):
        for number, item in enumerate(node):
            found += conditions(item, f"{path}[{number}]")
    return found


@pytest.mark.parametrize("name", CONTENT_FILES)
def test_every_language_has_the_same_choices_in_the_same_places(name):
    english = conditions(raw("en")[name])
    for language in LANGUAGES[1:]:
        assert conditions(raw(language)[name]) == english, f"{language}/{name}.toml"


def test_every_choice_of_the_protocol_has_text_in_every_language():
    """A choice nobody wrote text for would print nothing: each option appears in
    some `when` of every language (or is the default, whose text needs none)."""
    for language in LANGUAGES:
        used: dict[str, set[str]] = {}
        for _, (key, value) in (c for name in CONTENT_FILES
                                for c in conditions(raw(language)[name])):
            if key == "when":
                for setting, options in value.items():
                    used.setdefault(setting, set()).update(
                        [options] if isinstance(options, str) else options)
        for setting, options in choices().items():
            assert set(options) <= used.get(setting, set()), (language, setting)


def _with_when(when: Any) -> Content:
    content = load_content("en")
    data = {**content.data, "discharge": {**content.data["discharge"], "call_us": {
        **content.data["discharge"]["call_us"],
        "items": [{"text": "Call us.", "when": when}]}}}
    return Content(language="en", folder=content.folder, data=data)


@pytest.mark.parametrize(("when", "message"), [
    ({"postion": "raised"}, "'postion' is not a protocol choice"),
    ({"position": "upright"}, "position = 'upright' is not one of its choices"),
    ({"position": []}, "is not one of its choices"),
    ("raised", "is not a table"),
])
def test_a_bad_condition_in_the_text_names_the_file_and_choices(when, message):
    with pytest.raises(ConfigError) as caught:
        localised(_with_when(when), "lumbar", load_protocol(), load_brand())
    text = str(caught.value) + " ".join(f"{p.field} {p.problem} {p.fix}"
                                        for p in caught.value.problems)
    assert message in text and "content en/discharge.toml" in text
    if "protocol choice" in message:
        assert "position" in text and "cervical_route" in text
    elif "choices" in message:
        assert "'raised' or 'flat' or 'none'" in text


@pytest.mark.parametrize(("content", "message"), [
    ('position = "upright"', "position: is not one of the choices"),
    ('position = "upright"', "'raised', 'flat' or 'none'"),
    ("fasting = 4", "fasting: is not one of the choices"),
    ('cervical_route = "C1-C2"', "'lower_back' or 'neck'"),
    ("position_hours = 'a day'", "position_hours: must be a whole number"),
    ('shower = "hours"\nshower_hours = 12', "shower_hours: is less than bandage_hours"),
    ('seizure_medicines = []', "seizure_medicines: is empty"),
    ('seizure_medicines = ["tramadol", 3]', "seizure_medicines #2: must be a name"),
    ('seizure_medicines = [{ es = "tramadol" }]', "seizure_medicines #1: has no en name"),
    ('safe_pain_medicine = { en = "x", "Spanish" = "y" }', "'Spanish' is not a language code"),
    ("head_degrees = 30", "head_degrees: is no longer used"),
    ("head_raised_hours = 12\nposition_hours = 12", "keep only position_hours"),
    ('positon = "flat"', "did you mean 'position'?"),
])
def test_a_wrong_protocol_choice_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "protocol.toml"
    path.write_text(content + "\n", "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_protocol(path)
    text = " ".join(f"{p.field}: {p.problem} ({p.fix})" for p in caught.value.problems)
    assert message in text, text


def test_an_old_protocol_file_keeps_working(tmp_path):
    path = tmp_path / "protocol.toml"
    path.write_text("head_raised_hours = 12\n", "utf-8")
    assert load_protocol(path).position_hours == 12


def test_medicine_names_follow_the_language(tmp_path):
    path = tmp_path / "protocol.toml"
    path.write_text('seizure_medicines = ["tramadol (Ultram)", { en = "bupropion",'
                    ' es = "bupropión" }]\nsafe_pain_medicine = "ibuprofen"\n', "utf-8")
    protocol, brand = load_protocol(path), load_brand()
    en = localised(load_content("en"), "lumbar", protocol, brand)
    es = localised(load_content("es"), "lumbar", protocol, brand)
    assert "tramadol (Ultram) or bupropion" in " ".join(en["discharge"]["home"]["blocks"][1]["ul"])
    assert "tramadol (Ultram) o bupropión" in " ".join(es["discharge"]["home"]["blocks"][1]["ul"])
    assert "you may take ibuprofen" in " ".join(en["discharge"]["home"]["blocks"][1]["ul"])
