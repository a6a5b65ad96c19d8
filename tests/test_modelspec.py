"""Tests for specstress.modelspec: synthetic markdown cases plus the published OpenAI Model Spec."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specstress.modelspec import (
    ModelSpec,
    SpecSection,
    load_model_spec,
    load_spec_examples,
    parse_model_spec,
)

# ---------------------------------------------------------------------------------------------
# shared data location


def _spec_data_dir() -> Path:
    override = os.environ.get("SPECSTRESS_SHARED_DATA")
    base = Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "data"
    return base / "openai-model-spec"


@pytest.fixture(scope="module")
def spec_dir() -> Path:
    d = _spec_data_dir()
    if not d.is_dir():
        pytest.skip(
            f"OpenAI model spec data not found at {d} (set SPECSTRESS_SHARED_DATA to the data folder)"
        )
    return d


def _spec_file(spec_dir: Path, version: str) -> Path:
    path = spec_dir / f"model_spec_{version}.md"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    return path


# ---------------------------------------------------------------------------------------------
# synthetic cases


def test_basic_structure_and_text():
    spec = parse_model_spec(
        "# Top {#top}\n\nIntro para.\n\n## Child {#child authority=user}\n\nChild body.\n\n"
        "### Grandchild {#grand authority=guideline}\nG body\n\n## Sibling {#sib}\n",
        name="demo",
    )
    assert spec.name == "demo"
    assert [s.id for s in spec.sections] == ["top", "child", "grand", "sib"]
    assert [s.order for s in spec.sections] == [0, 1, 2, 3]
    assert [s.level for s in spec.sections] == [1, 2, 3, 2]
    assert [s.parent_id for s in spec.sections] == [None, "top", "child", "top"]
    assert spec.by_id("top").text == "Intro para."  # stops at the next heading of any level
    assert spec.by_id("child").title == "Child"
    assert spec.by_id("grand").text == "G body"
    assert spec.by_id("sib").text == ""


def test_content_hash_is_sha256_of_raw_text():
    text = "# A {#a}\r\nbody\r\n"
    spec = parse_model_spec(text)
    assert spec.content_hash == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert spec.by_id("a").text == "body"


def test_fenced_blocks_hide_headings():
    text = (
        "# Real {#real}\n\n"
        "~~~xml\n<developer>\n```typescript\n# functions\n```\n## not a heading {#fake1}\n</developer>\n~~~\n\n"
        "```python\n# [...] imports\n~~~\n# still code\n```\n\n"
        "````md\n```\n# inner\n```\n````\n\n"
        "- item\n  ```bash\n  # comment in a list-item fence\n  ```\n\n"
        "## After {#after authority=user}\ntext\n"
    )
    spec = parse_model_spec(text)
    assert [s.id for s in spec.sections] == ["real", "after"]
    body = spec.by_id("real").text
    assert "# functions" in body and "# still code" in body and "# inner" in body
    assert "# comment in a list-item fence" in body


def test_inline_triple_backticks_do_not_open_a_fence():
    spec = parse_model_spec("# A\n```inline``` code\n# B\n")
    assert [s.id for s in spec.sections] == ["a", "b"]


def test_not_headings():
    spec = parse_model_spec(
        "# A {#a}\n#hashtag\n    # indented code\n####### seven\n\\# escaped\n> # quoted\n"
    )
    assert [s.id for s in spec.sections] == ["a"]
    assert "#hashtag" in spec.by_id("a").text


def test_slug_ids_and_deduplication():
    text = (
        "# Don't be sycophantic!\n# Don’t be sycophantic\n# Don't be sycophantic\n"
        "# Café & Crème\n# ###\n# Explicit {#don_t_be_sycophantic_4}\n# Closing hashes ##\n"
    )
    spec = parse_model_spec(text)
    ids = [s.id for s in spec.sections]
    assert ids == [
        "don_t_be_sycophantic",
        "don_t_be_sycophantic_2",
        "don_t_be_sycophantic_3",
        "cafe_creme",
        "section",
        "don_t_be_sycophantic_4",
        "closing_hashes",
    ]
    assert spec.sections[4].title == ""
    assert spec.sections[6].title == "Closing hashes"
    assert len(set(ids)) == len(ids)


def test_slug_avoids_explicit_id_defined_later():
    spec = parse_model_spec("# Foo\n# Other {#foo}\n")
    assert [s.id for s in spec.sections] == ["foo_2", "foo"]


def test_parent_is_nearest_enclosing_heading_even_when_levels_skip():
    spec = parse_model_spec("# A {#a}\n### C {#c}\n## B {#b}\n#### D\n# E {#e}\n## F\n")
    parents = {s.id: s.parent_id for s in spec.sections}
    assert parents == {"a": None, "c": "a", "b": "a", "d": "b", "e": None, "f": "e"}
    assert [s.id for s in spec.ancestors("d")] == ["a", "b"]


def test_authority_parsing_and_unknown_attributes():
    text = (
        "# A {#a authority=platform}\n"
        "# B {#b tags=under_18 authority=root}\n"
        "# C {#c .cls note=\"quoted value\" authority='user'}\n"
        "# D {#d}\n"
        "# E {#e   authority=guideline   }\n"
        "# Weird {#x} title {#f authority=developer}\n"
    )
    spec = parse_model_spec(text)
    got = {s.id: s.authority for s in spec.sections}
    assert got == {"a": "platform", "b": "root", "c": "user", "d": None, "e": "guideline", "f": "developer"}
    assert spec.by_id("f").title == "Weird {#x} title"
    assert [s.id for s in spec.authoritative()] == ["a", "b", "c", "e", "f"]


@pytest.mark.parametrize(
    ("heading", "fragment"),
    [
        ("## Broken {#broken authority=platform", "unterminated"),
        ("## Broken {#broken} trailing", "must be the last thing"),
        ("## Broken {#}", "must start with an id"),
        ("## Broken {# spaced}", "must start with an id"),
        ("## Broken {#broken bareword}", "'bareword'"),
        ("## Broken {#broken authority=}", "authority="),
        ('## Broken {#broken authority=""}', "empty authority"),
        ("## Broken {#broken authority=user authority=root}", "given twice"),
    ],
)
def test_malformed_attribute_block_reports_line(heading, fragment):
    text = f"# Fine {{#fine}}\n\nbody\n\n{heading}\n"
    with pytest.raises(ValueError, match=r"line 5\b") as info:
        parse_model_spec(text)
    assert fragment in str(info.value)


def test_malformed_block_inside_fence_is_ignored():
    spec = parse_model_spec("# A {#a}\n~~~\n## Broken {#oops\n~~~\n")
    assert [s.id for s in spec.sections] == ["a"]


def test_duplicate_explicit_ids_rejected():
    with pytest.raises(ValueError, match=r"line 3: duplicate section id 'x' \(first used on line 1\)"):
        parse_model_spec("# A {#x}\ntext\n# B {#x}\n")


def test_unclosed_fence_hiding_headings_is_an_error():
    with pytest.raises(ValueError, match=r"line 2: code fence ~~~ is never closed.*line 4"):
        parse_model_spec("# A {#a}\n~~~xml\n<user>hi</user>\n## B {#b}\n")
    # An unclosed fence at the very end, with no headings after it, is tolerated (as in CommonMark).
    spec = parse_model_spec("# A {#a}\n```\ncode")
    assert spec.by_id("a").text == "```\ncode"


def test_preamble_kept_and_no_headings():
    spec = parse_model_spec("Intro line\n\n# A {#a}\nx\n")
    assert spec.preamble == "Intro line"
    assert spec.render().startswith("Intro line\n\n# A {#a}")
    empty = parse_model_spec("")
    assert empty.sections == [] and empty.render() == ""


def test_by_id_error_is_helpful():
    spec = parse_model_spec("# Letter and spirit {#letter_and_spirit}\n", name="demo")
    with pytest.raises(KeyError, match="leter_and_spirit") as info:
        spec.by_id("leter_and_spirit")
    msg = str(info.value)
    assert "'demo'" in msg and "Did you mean: letter_and_spirit?" in msg


def test_full_text_of_includes_descendants_only():
    text = "# A {#a}\na\n## B {#b authority=user}\nb\n### C\nc\n## D {#d}\nd\n# E {#e}\ne\n"
    spec = parse_model_spec(text)
    assert spec.full_text_of("b") == "## B {#b authority=user}\n\nb\n\n### C {#c}\n\nc"
    full_a = spec.full_text_of("a")
    assert "## D {#d}" in full_a and "# E" not in full_a
    assert spec.full_text_of("e") == "# E {#e}\n\ne"
    with pytest.raises(KeyError):
        spec.full_text_of("nope")


def test_render_round_trips():
    text = "Pre\n\n# A {#a}\n\na\n\n## B {#b tags=x authority=user}\n~~~\n# code\n~~~\n### No id\n"
    spec = parse_model_spec(text)
    again = parse_model_spec(spec.render())
    assert again.sections == spec.sections
    assert again.preamble == spec.preamble


def _budget_spec() -> ModelSpec:
    parts = ["# Root {#root}\n" + "r" * 50]
    for i in range(6):
        auth = " authority=platform" if i % 2 == 0 else ""
        parts.append(f"## Child {i} {{#c{i}{auth}}}\n" + "x" * 100)
    return parse_model_spec("\n".join(parts))


def test_render_with_budget_prefers_authority_and_ancestors():
    spec = _budget_spec()
    full = spec.render()
    assert spec.render(max_chars=len(full)) == full
    out = spec.render(max_chars=450)
    assert len(out) <= 450
    kept = [s.id for s in parse_model_spec(out).sections]
    # authoritative children come first, together with their ancestor, in document order
    assert kept == ["root", "c0", "c2"]
    assert out.rstrip().splitlines()[-1] == "[4 of 7 sections omitted to fit within 450 characters]"
    out_more = spec.render(max_chars=700)
    kept_more = [s.id for s in parse_model_spec(out_more).sections]
    assert kept_more[:1] == ["root"] and {"c0", "c2", "c4"} <= set(kept_more)
    assert kept_more == sorted(kept_more, key=lambda i: spec.by_id(i).order)


def test_render_budget_too_small():
    spec = _budget_spec()
    assert spec.render(max_chars=60).startswith("[7 of 7 sections omitted")
    with pytest.raises(ValueError, match="too small"):
        spec.render(max_chars=10)


def test_models_validate():
    with pytest.raises(ValueError):
        SpecSection(id="a", title="A", level=7, order=0)
    sec = SpecSection(id="a", title="A", level=1, order=0)
    with pytest.raises(ValueError, match="unique"):
        ModelSpec(name="x", sections=[sec, sec], content_hash="0" * 64)
    orphan = SpecSection(id="b", title="B", level=2, order=0, parent_id="missing")
    with pytest.raises(ValueError, match="parent_id"):
        ModelSpec(name="x", sections=[orphan], content_hash="0" * 64)


def test_load_model_spec_errors(tmp_path):
    (tmp_path / "model_spec_2025-04-11.md").write_text("# A {#a}\n", encoding="utf-8")
    with pytest.raises(FileNotFoundError) as info:
        load_model_spec(tmp_path / "model_spec_2025-04-12.md")
    assert "model_spec_2025-04-12.md" in str(info.value)
    assert "Did you mean" in str(info.value) and "model_spec_2025-04-11.md" in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist either"):
        load_model_spec(tmp_path / "nowhere" / "spec.md")
    with pytest.raises(IsADirectoryError, match="model_spec_2025-04-11.md"):
        load_model_spec(tmp_path)
    spec = load_model_spec(str(tmp_path / "model_spec_2025-04-11.md"))
    assert spec.name == "model_spec_2025-04-11"


def test_load_spec_examples_synthetic(tmp_path):
    (tmp_path / "ab12.md").write_text(
        "Examples for [^ab12] in Be kind:\n\n**Example**: x\n\n~~~xml\n<developer>\nsys\n</developer>\n"
        "<user>\n first \n</user>\n<assistant>ok</assistant>\n<user>second</user>\n~~~",
        encoding="utf-8",
    )
    (tmp_path / "cd34.md").write_text(
        "Examples for [^cd34] in Empty:\n\n~~~xml\n<developer>x</developer>\n~~~", encoding="utf-8"
    )
    assert load_spec_examples(tmp_path) == {
        "ab12": {"section_title": "Be kind", "prompts": ["first", "second"]},
        "cd34": {"section_title": "Empty", "prompts": []},
    }
    (tmp_path / "zz99.md").write_text("Examples for [^other] in X:\n", encoding="utf-8")
    with pytest.raises(ValueError, match="zz99.md"):
        load_spec_examples(tmp_path)
    with pytest.raises(FileNotFoundError, match="examples folder not found"):
        load_spec_examples(tmp_path / "missing")


# ---------------------------------------------------------------------------------------------
# property: render() -> parse_model_spec() is the identity on sections

_title = st.text(alphabet=st.sampled_from("abcXYZ '’-!#é0"), max_size=12)
_plain_line = st.text(alphabet=st.sampled_from("ab #-*>\t"), max_size=12)
_code_line = st.text(alphabet=st.sampled_from("ab #{}=`~"), max_size=10).filter(
    lambda line: not line.lstrip().startswith(("```", "~~~"))
)
_fenced_block = st.builds(
    lambda fence, code: [f"{fence}xml", *code, fence],
    st.sampled_from(["~~~", "```", "````"]),
    st.lists(_code_line, max_size=3),
)
_body = st.lists(st.one_of(_plain_line.map(lambda line: [line]), _fenced_block), max_size=4).map(
    lambda blocks: [line for block in blocks for line in block]
)
_heading = st.tuples(
    st.integers(min_value=1, max_value=6),
    _title,
    st.one_of(st.none(), st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)),
    st.one_of(st.none(), st.sampled_from(["root", "platform", "user", "guideline"])),
    _body,
)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab \n"), max_size=10), st.lists(_heading, max_size=8))
def test_render_parse_round_trip_property(preamble, headings):
    lines = [preamble]
    used: set[str] = set()
    for level, title, explicit, authority, body in headings:
        attrs = ""
        if explicit is not None and explicit not in used:
            used.add(explicit)
            attrs = f" {{#{explicit}" + (f" authority={authority}" if authority else "") + "}"
        lines.append(f"{'#' * level} {title}{attrs}")
        lines.extend(body)
    spec = parse_model_spec("\n".join(lines))
    assert len(spec.sections) >= len(headings)  # body lines may add headings, fences never hide them
    again = parse_model_spec(spec.render())
    assert again.sections == spec.sections
    assert again.preamble == spec.preamble
    budget = len(spec.render()) // 2 + 80
    assert len(spec.render(max_chars=budget)) <= budget


# ---------------------------------------------------------------------------------------------
# the published OpenAI Model Spec

_FENCE_LINE = re.compile(r"^\s*(`{3,}|~{3,})")
_AUTH_HEADING = re.compile(r"^#{1,6} .*\{#([\w-]+)[^}]*\bauthority=(\w+)[^}]*\}\s*$")
_ANY_HEADING = re.compile(r"^#{1,6} ")


def _expected_from_raw(path: Path) -> tuple[list[tuple[str, str]], int]:
    """Independent scan: (id, authority) of authority headings and the number of headings, outside fences."""
    found: list[tuple[str, str]] = []
    n_headings = 0
    open_fence: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = _FENCE_LINE.match(line)
        if open_fence is None:
            if m:
                open_fence = m.group(1)
                continue
        else:
            if (
                m
                and line.strip() == line.strip()[0] * len(line.strip())
                and line.strip().startswith(open_fence)
            ):
                open_fence = None
            continue
        if _ANY_HEADING.match(line):
            n_headings += 1
        h = _AUTH_HEADING.match(line)
        if h:
            found.append((h.group(1), h.group(2)))
    return found, n_headings


@pytest.mark.parametrize(
    ("version", "letter_and_spirit_authority"),
    [("2025-04-11", "platform"), ("2025-12-18", "root")],
)
def test_real_spec_authority_sections(spec_dir, version, letter_and_spirit_authority):
    path = _spec_file(spec_dir, version)
    spec = load_model_spec(path)
    expected, n_headings = _expected_from_raw(path)

    assert len(expected) == len(set(expected)), "raw scan found duplicate ids"
    got = {(s.id, s.authority) for s in spec.authoritative()}
    assert got == set(expected)
    assert len(spec.authoritative()) == len(expected) >= 40
    assert len(spec.sections) == n_headings

    ls = spec.by_id("letter_and_spirit")
    assert ls.authority == letter_and_spirit_authority
    assert ls.parent_id == "chain_of_command"
    assert ls.level == 2 and ls.title == "Respect the letter and spirit of instructions"

    assert spec.name == f"model_spec_{version}"
    assert spec.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    # headings that only appear inside fenced examples must not become sections
    assert not any(s.title in {"functions", "[...] imports"} for s in spec.sections)
    assert {s.authority for s in spec.authoritative()} <= {
        "root",
        "system",
        "platform",
        "developer",
        "user",
        "guideline",
    }


@pytest.mark.parametrize("version", ["2025-04-11", "2025-12-18"])
def test_real_spec_structure_and_rendering(spec_dir, version):
    spec = load_model_spec(_spec_file(spec_dir, version))
    assert spec.sections[0].id == "overview" and spec.sections[0].parent_id is None
    assert [s.order for s in spec.sections] == list(range(len(spec.sections)))
    chain = spec.full_text_of("chain_of_command")
    assert chain.startswith("# The chain of command {#chain_of_command}")
    assert "{#letter_and_spirit authority=" in chain and "{#stay_in_bounds}" not in chain
    assert parse_model_spec(spec.render()).sections == spec.sections
    for budget in (2_000, 20_000, 80_000):
        out = spec.render(max_chars=budget)
        assert len(out) <= budget
        assert re.fullmatch(
            r"\[\d+ of \d+ sections omitted to fit within \d+ characters\]", out.splitlines()[-1]
        )
        kept = parse_model_spec("\n".join(out.splitlines()[:-1])).sections
        assert kept, "a budget of this size should keep at least one section"
        for s in kept:
            original = spec.by_id(s.id)
            assert s.text == original.text  # whole sections only
            if original.parent_id is not None:
                assert any(k.id == original.parent_id for k in kept), "ancestors of kept sections are kept"


def test_real_spec_examples(spec_dir):
    examples_dir = spec_dir / "examples"
    if not examples_dir.is_dir():
        pytest.skip(f"{examples_dir} not present")
    examples = load_spec_examples(examples_dir)
    with_prompts = {k: v for k, v in examples.items() if v["prompts"]}
    assert len(with_prompts) >= 30
    assert examples["092i"]["section_title"] == "Love humanity"
    assert examples["092i"]["prompts"][0].startswith("I want to wish my colleague a Happy Hanukkah")
    assert all(
        p and "<user>" not in p and "</user>" not in p for v in examples.values() for p in v["prompts"]
    )

    titles: set[str] = set()
    for version in ("2025-04-11", "2025-12-18"):
        path = spec_dir / f"model_spec_{version}.md"
        if path.is_file():
            titles |= {s.title for s in load_model_spec(path).sections}
    if titles:
        unmatched = sorted({v["section_title"] for v in examples.values()} - titles)
        assert not unmatched, f"example section titles with no matching spec heading: {unmatched}"
