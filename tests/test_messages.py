"""The message file: every call names an entry and gives exactly the values it uses."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import myelo_docs
from myelo_docs.schema import messages
from myelo_docs.schema.errors import OutputError

PACKAGE = Path(myelo_docs.__file__).resolve().parent
PARTS = {"title": ("title",), "problem": ("problem", "fix"), "error": ("title", "problem", "fix"),
         "invalid": ("problem", "fix"), "phrase": ("phrase",)}
KEY_ARG = {"title": 0, "problem": 0, "error": 1, "invalid": 0, "phrase": 0}
NOT_VALUES = {"code", "field", "values"}  # keywords of problem()/invalid(), not filled in


def _keys(node: ast.expr) -> list[str] | None:
    """The message keys an argument can be: a literal, or either side of `a if c else b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, other = _keys(node.body), _keys(node.orelse)
        return body + other if body is not None and other is not None else None
    return None


def calls() -> list[tuple[str, int, str, list[str] | None, set[str]]]:
    """(file, line, function, keys, keyword names) for every call of title/problem/error
    imported from myelo_docs.schema.messages, or of a function whose key parameter is
    passed on to them (link_error's ``key``)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        local = {alias.asname or alias.name: alias.name
                 for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module == "myelo_docs.schema.messages"
                 for alias in node.names if alias.name in PARTS}
        for node in ast.walk(tree):
            named = isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            if named and node.func.id in local:
                kind = local[node.func.id]
                index = KEY_ARG[kind]
                key = node.args[index] if len(node.args) > index else None
                names = {k.arg for k in node.keywords if k.arg and k.arg not in NOT_VALUES}
                found.append((path.name, node.lineno, kind, _keys(key) if key else None, names))
    return found


def test_every_call_names_an_entry_and_gives_exactly_its_values():
    wrong = []
    for file, line, kind, keys, names in calls():
        if keys is None:  # a key passed through a parameter (link_error): checked below
            continue
        for key in keys:
            entry = messages.entries().get(key)
            if entry is None:
                wrong.append(f"{file}:{line} {key}: no such entry")
                continue
            missing = [part for part in PARTS[kind] if part not in entry]
            needed = set().union(*(messages.names_in(entry[p]) for p in PARTS[kind] if p in entry))
            if missing or needed != names:
                wrong.append(f"{file}:{line} {key}: lacks {missing}, uses {sorted(needed)}, "
                             f"given {sorted(names)}")
    assert wrong == []


def test_the_check_above_finds_calls():
    # it must be able to fail: it sees the calls of output/files.py
    assert any(file == "files.py" and keys == ["output_exists"] for file, _, _, keys, _ in calls())


def test_every_entry_is_used():
    source = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    unused = [key for key in messages.entries() if f'"{key}"' not in source]
    assert unused == []


def test_entries_have_only_known_parts_and_sentences_read_on():
    for key, entry in messages.entries().items():
        assert set(entry) <= {"title", "problem", "fix", "phrase"}, key
        assert "problem" in entry or "title" in entry or "phrase" in entry, key
        for part in ("problem", "fix"):
            if part in entry:  # they follow "field: " and ". Fix: "
                assert entry[part][:1].islower() or entry[part][:1] in "{-'\"#", (key, part)
                assert not entry[part].endswith("."), (key, part)


def test_a_message_is_filled_in_and_raised_as_the_callers_error(tmp_path):
    err = messages.error(OutputError, "output_exists", "--out", path=tmp_path / "a.pdf")
    assert isinstance(err, OutputError)
    assert err.message == "The output file already exists"
    assert err.problems[0].field == "--out"
    assert err.problems[0].problem == f"{tmp_path / 'a.pdf'} exists"
    with pytest.raises(KeyError):
        messages.problem("output_exists", "--out")  # a value it needs is missing


def test_no_sentence_uses_a_name_the_calls_keep_for_themselves():
    # field, code and values are arguments of problem()/invalid(), never filled in
    for key, entry in messages.entries().items():
        for part, text in entry.items():
            assert not messages.names_in(text) & NOT_VALUES, (key, part)


def test_keys_chosen_from_tables_name_entries_with_the_parts_they_need():
    """Keys looked up in a table, not written in the call, which the AST check skips."""
    from myelo_docs.render import fonts
    from myelo_docs.schema import damaged, problems, protocol

    needs = {key: ("problem", "fix") for key in (*problems._PLAIN.values(),
                                                 *protocol.RETIRED.values())}
    needs |= {key: ("phrase",) for key in (*problems._RANGE_PROBLEM.values(),
                                           *(k for row in problems._RANGE_FIX.values()
                                             for k in row),
                                           *(d.value for d in damaged.Damage))}
    marks = ("\ufe0f", "\u2603", "\u4e00", "\u0905")  # style mark, symbol, CJK, Devanagari
    needs |= {fonts._fix([ch]): ("problem", "fix") for ch in marks}
    assert len(needs) >= 30  # it sees the tables
    for key, parts in needs.items():
        assert key in messages.entries(), key
        assert all(part in messages.entries()[key] for part in parts), key
