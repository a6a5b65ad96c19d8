"""Parse a markdown "model spec" (e.g. the OpenAI Model Spec) into sections for judge prompts.

The input format is CommonMark with ATX headings (``#`` .. ``######``) that may end in a
pandoc-style attribute block::

    ## Follow all applicable instructions {#follow_all_applicable_instructions authority=platform}
    # The chain of command {#chain_of_command}

The first token of the block is the section id; further ``key=value`` pairs (quoted values
allowed) and ``.class`` tokens may follow. Only ``authority`` is kept; unknown keys (such as
``tags=under_18``) are accepted and ignored. Headings without a block get a slug id made from
the title. Lines inside fenced code blocks (``` and ~~~, matched by fence character and length
as in CommonMark, so a ``` line inside a ~~~ block does not close it) are never headings.
Setext headings (underlined with ``===``/``---``) are not recognised.

Public API: :class:`SpecSection`, :class:`ModelSpec`, :func:`parse_model_spec`,
:func:`load_model_spec` and :func:`load_spec_examples` (the ``examples/*.md`` files that the
spec's ``[^id]`` markers refer to).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypedDict

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "KNOWN_AUTHORITIES",
    "ModelSpec",
    "SpecExample",
    "SpecSection",
    "load_model_spec",
    "load_spec_examples",
    "parse_model_spec",
]

#: Authority levels seen in published OpenAI Model Spec versions (2025-04-11 uses platform;
#: 2025-12-18 uses root and system). Informational only: other values are accepted.
KNOWN_AUTHORITIES: frozenset[str] = frozenset(
    {"root", "system", "platform", "developer", "user", "guideline"}
)

_LINE_SPLIT = re.compile(r"\r\n|\r|\n")
# ATX heading at the top level: up to 3 spaces of indentation, 1-6 '#', then a space/tab or EOL.
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+$")
# A fence may sit inside list items / block quotes, so container prefixes are allowed before it.
_FENCE_OPEN = re.compile(r"^[ \t]*(?:(?:>[ \t]*)|(?:(?:[-*+]|\d{1,9}[.)])[ \t]+))*(`{3,}|~{3,})(.*)$")
_FENCE_CLOSE = re.compile(r"^[ \t]*(?:>[ \t]*)*(`{3,}|~{3,})[ \t]*$")
_ATTR_BLOCK = re.compile(r"\{#(.*)\}[ \t]*")
_ATTR_ID = re.compile(r"[^\s{}=\"'#.][^\s{}=\"']*")
_ATTR_TOKEN = re.compile(
    r"""[ \t]+(?:
        (?P<cls>\.[^\s{}=\"']+)
      | (?P<key>[A-Za-z_][\w.-]*)=(?P<val>"[^"]*"|'[^']*'|[^\s"'{}]+)
    )""",
    re.VERBOSE,
)
_EXAMPLE_HEADER = re.compile(r"^Examples for \[\^(?P<id>[^\]\s]+)\] in (?P<title>.*?):?[ \t]*$")
_USER_BLOCK = re.compile(r"<user(?:\s[^>]*)?>(.*?)</user\s*>", re.DOTALL)


class SpecSection(BaseModel):
    """One heading of the spec and the body text directly under it (not its subsections)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    title: str
    level: Annotated[int, Field(ge=1, le=6)]
    authority: str | None = None
    parent_id: str | None = None
    text: str = ""
    order: Annotated[int, Field(ge=0)]

    def heading_markdown(self) -> str:
        """The heading line with an attribute block, so ids and authority survive a re-parse."""
        attrs = f"#{self.id}" + (f" authority={self.authority}" if self.authority else "")
        title = f"{self.title} " if self.title else ""
        return f"{'#' * self.level} {title}{{{attrs}}}"

    def to_markdown(self) -> str:
        """Heading line plus body text."""
        head = self.heading_markdown()
        return f"{head}\n\n{self.text}" if self.text else head


class ModelSpec(BaseModel):
    """A parsed spec: sections in document order plus the sha256 of the raw source text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    sections: list[SpecSection]
    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    #: Text before the first heading (empty for the published specs); kept so nothing is lost.
    preamble: str = ""

    @model_validator(mode="after")
    def _check_structure(self) -> ModelSpec:
        seen: set[str] = set()
        for section in self.sections:
            if section.id in seen:
                raise ValueError(f"section ids must be unique; {section.id!r} appears more than once")
            if section.parent_id is not None and section.parent_id not in seen:
                raise ValueError(
                    f"section {section.id!r} has parent_id {section.parent_id!r}, which is not an earlier section"
                )
            seen.add(section.id)
        return self

    # -- lookup ------------------------------------------------------------------------------

    def by_id(self, id: str) -> SpecSection:
        """The section with this id; ``KeyError`` (with close matches) if there is none."""
        for section in self.sections:
            if section.id == id:
                return section
        ids = [s.id for s in self.sections]
        close = difflib.get_close_matches(id, ids, n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"no section with id {id!r} in model spec {self.name!r} ({len(ids)} sections).{hint}")

    def authoritative(self) -> list[SpecSection]:
        """Sections that carry an ``authority=`` attribute, in document order."""
        return [s for s in self.sections if s.authority is not None]

    def ancestors(self, id: str) -> list[SpecSection]:
        """Enclosing sections of ``id``, outermost first."""
        index = {s.id: s for s in self.sections}
        chain: list[SpecSection] = []
        parent = self.by_id(id).parent_id
        while parent is not None:
            chain.append(index[parent])
            parent = index[parent].parent_id
        return chain[::-1]

    def subtree(self, id: str) -> list[SpecSection]:
        """The section ``id`` followed by all its descendants, in document order."""
        root = self.by_id(id)
        out = [root]
        for section in self.sections[self.sections.index(root) + 1 :]:
            if section.level <= root.level:
                break
            out.append(section)
        return out

    # -- rendering ---------------------------------------------------------------------------

    def full_text_of(self, id: str) -> str:
        """The section and all its descendants rendered back as markdown."""
        return "\n\n".join(s.to_markdown() for s in self.subtree(id))

    def render(self, max_chars: int | None = None) -> str:
        """The whole spec as markdown (headings keep ``{#id authority=...}`` blocks).

        With ``max_chars``, the result is at most ``max_chars`` long: whole sections are kept in
        document order, first the sections with an authority (each together with its ancestors,
        so its context stays readable), then the others, skipping any that no longer fit; a final
        line says how many sections were omitted. ``ValueError`` if even that line does not fit.
        """
        chunks: list[str] = ([self.preamble] if self.preamble else []) + [
            s.to_markdown() for s in self.sections
        ]
        full = "\n\n".join(chunks)
        if max_chars is None or len(full) <= max_chars:
            return full

        total = len(self.sections)
        worst_note = self._omission_note(total, total, max_chars, preamble_dropped=bool(self.preamble))
        if max_chars < len(worst_note):
            raise ValueError(
                f"max_chars={max_chars} is too small to render model spec {self.name!r}: "
                f"the omission notice alone needs {len(worst_note)} characters"
            )
        budget = max_chars - len(worst_note) - 2  # 2 for the blank line before the notice

        index = {s.id: i for i, s in enumerate(self.sections)}
        groups: list[list[int]] = []  # section indices (preamble = -1) in priority order
        for section in self.authoritative():
            groups.append([index[a.id] for a in self.ancestors(section.id)] + [index[section.id]])
        if self.preamble:
            groups.append([-1])
        for section in self.sections:
            if section.authority is None:
                groups.append([index[a.id] for a in self.ancestors(section.id)] + [index[section.id]])

        def chunk(i: int) -> str:
            return self.preamble if i < 0 else self.sections[i].to_markdown()

        chosen: set[int] = set()
        used = 0
        for group in groups:
            new = [i for i in dict.fromkeys(group) if i not in chosen]
            cost = sum(len(chunk(i)) + 2 for i in new)  # +2: joining blank line
            if new and used + cost <= budget + 2:  # the first chunk has no leading separator
                chosen.update(new)
                used += cost

        kept = sorted(chosen)
        omitted = total - sum(1 for i in kept if i >= 0)
        note = self._omission_note(
            omitted, total, max_chars, preamble_dropped=bool(self.preamble) and -1 not in chosen
        )
        body = "\n\n".join(chunk(i) for i in kept)
        return f"{body}\n\n{note}" if body else note

    @staticmethod
    def _omission_note(omitted: int, total: int, max_chars: int, *, preamble_dropped: bool) -> str:
        extra = " and the preamble" if preamble_dropped else ""
        return f"[{omitted} of {total} sections{extra} omitted to fit within {max_chars} characters]"


class SpecExample(TypedDict):
    """One ``examples/<id>.md`` file: the section it illustrates and its user prompts."""

    section_title: str
    prompts: list[str]


# -- parsing ---------------------------------------------------------------------------------


@dataclass
class _RawHeading:
    line_no: int  # 1-based
    level: int
    title: str
    explicit_id: str | None
    authority: str | None
    body: list[str]


@dataclass
class _Fence:
    char: str
    length: int
    line_no: int


def _fence_opening(line: str) -> _Fence | None:
    m = _FENCE_OPEN.match(line)
    if not m:
        return None
    marker, info = m.group(1), m.group(2)
    if marker[0] == "`" and "`" in info:  # ```code``` on one line is inline code, not a fence
        return None
    return _Fence(marker[0], len(marker), 0)


def _closes(line: str, fence: _Fence) -> bool:
    m = _FENCE_CLOSE.match(line)
    return bool(m) and m.group(1)[0] == fence.char and len(m.group(1)) >= fence.length


def _heading_content(line: str) -> tuple[int, str] | None:
    m = _HEADING.match(line)
    if not m:
        return None
    content = _CLOSING_HASHES.sub("", m.group(2) or "").strip()
    return len(m.group(1)), content


def _parse_attributes(content: str, line_no: int, line: str) -> tuple[str, str | None, str | None]:
    """Split heading content into (title, explicit id, authority)."""
    start = content.rfind("{#")
    if start < 0:
        return content, None, None
    where = f"line {line_no}: {line.strip()!r}"
    block = content[start:]
    if "}" not in block:
        raise ValueError(f"{where}: unterminated attribute block: '{{#' has no closing '}}'")
    m = _ATTR_BLOCK.fullmatch(block)
    if not m:
        raise ValueError(f"{where}: attribute block '{{#...}}' must be the last thing on the heading line")
    inner = m.group(1)
    id_match = _ATTR_ID.match(inner)
    if not id_match:
        raise ValueError(
            f"{where}: attribute block must start with an id, like {{#my_section authority=user}}"
        )
    attrs: dict[str, str] = {}
    pos = id_match.end()
    while pos < len(inner):
        if not inner[pos:].strip():
            break
        tok = _ATTR_TOKEN.match(inner, pos)
        if not tok:
            bad = inner[pos:].split()[0]
            raise ValueError(
                f"{where}: cannot parse {bad!r} in attribute block; expected key=value pairs or .class tokens"
            )
        if tok.group("key"):
            key, val = tok.group("key"), tok.group("val")
            if val[:1] in "\"'":
                val = val[1:-1]
            if key in attrs:
                raise ValueError(f"{where}: attribute {key!r} given twice")
            attrs[key] = val
        pos = tok.end()
    authority = attrs.get("authority")
    if authority is not None and not authority.strip():
        raise ValueError(f"{where}: empty authority value")
    return content[:start].rstrip(), id_match.group(0), authority


def _slugify(title: str) -> str:
    """Lowercase; accents dropped (é -> e); each run of non-alphanumerics -> '_'."""
    decomposed = unicodedata.normalize("NFKD", title.lower())
    base = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[\W_]+", "_", base).strip("_") or "section"


def _strip_body(lines: Iterable[str]) -> str:
    """Drop surrounding blank lines and trailing whitespace; keep the first line's indentation."""
    text = "\n".join(lines).rstrip()
    return re.sub(r"\A(?:[ \t]*\n)+", "", text)


def parse_model_spec(text: str, name: str = "model-spec") -> ModelSpec:
    """Parse markdown spec text into a :class:`ModelSpec`.

    Raises ``ValueError`` (with the 1-based line number) for a malformed ``{#...}`` attribute
    block, a duplicated explicit id, or a code fence that is never closed while headings follow it
    (those headings would otherwise vanish silently).
    """
    content_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    lines = _LINE_SPLIT.split(text.removeprefix("\ufeff"))

    preamble: list[str] = []
    headings: list[_RawHeading] = []
    fence: _Fence | None = None
    for line_no, line in enumerate(lines, start=1):
        target = headings[-1].body if headings else preamble
        if fence is not None:
            if _closes(line, fence):
                fence = None
            target.append(line)
            continue
        opened = _fence_opening(line)
        if opened is not None:
            opened.line_no = line_no
            fence = opened
            target.append(line)
            continue
        parsed = _heading_content(line)
        if parsed is None:
            target.append(line)
            continue
        level, content = parsed
        title, explicit_id, authority = _parse_attributes(content, line_no, line)
        headings.append(_RawHeading(line_no, level, title, explicit_id, authority, []))

    if fence is not None:
        hidden = [
            (n, line)
            for n, line in enumerate(lines[fence.line_no :], start=fence.line_no + 1)
            if _heading_content(line) is not None
        ]
        if hidden:
            n, line = hidden[0]
            raise ValueError(
                f"line {fence.line_no}: code fence {fence.char * fence.length} is never closed, so "
                f"{len(hidden)} heading(s) after it are treated as code (first at line {n}: {line.strip()!r}); "
                f"add a closing {fence.char * fence.length} line"
            )

    first_line: dict[str, int] = {}
    for h in headings:
        if h.explicit_id is None:
            continue
        if h.explicit_id in first_line:
            raise ValueError(
                f"line {h.line_no}: duplicate section id {h.explicit_id!r} (first used on line "
                f"{first_line[h.explicit_id]}); ids must be unique"
            )
        first_line[h.explicit_id] = h.line_no

    taken = set(first_line)
    sections: list[SpecSection] = []
    stack: list[SpecSection] = []  # open ancestors, outermost first
    for order, h in enumerate(headings):
        section_id = h.explicit_id
        if section_id is None:
            base = _slugify(h.title)
            section_id, n = base, 1
            while section_id in taken:
                n += 1
                section_id = f"{base}_{n}"
            taken.add(section_id)
        while stack and stack[-1].level >= h.level:
            stack.pop()
        section = SpecSection(
            id=section_id,
            title=h.title,
            level=h.level,
            authority=h.authority,
            parent_id=stack[-1].id if stack else None,
            text=_strip_body(h.body),
            order=order,
        )
        sections.append(section)
        stack.append(section)

    return ModelSpec(name=name, sections=sections, content_hash=content_hash, preamble=_strip_body(preamble))


# -- loading ---------------------------------------------------------------------------------


def _missing_file_hint(path: Path) -> str:
    parent = path.parent
    if parent.is_dir():
        candidates = sorted(p.name for p in parent.iterdir() if p.suffix == ".md")
        close = difflib.get_close_matches(path.name, candidates, n=3, cutoff=0.5)
        if close:
            return f"Did you mean {', '.join(str(parent / c) for c in close)}?"
        if candidates:
            return f"Markdown files in {parent}: {', '.join(candidates[:5])}."
        return f"{parent} has no .md files."
    return f"The folder {parent} does not exist either; check the path (relative to {Path.cwd()})."


def load_model_spec(path: str | os.PathLike[str]) -> ModelSpec:
    """Read and parse a spec file; the spec's name is the file stem.

    ``content_hash`` is the sha256 of the file's bytes (the text is decoded as UTF-8 without
    newline translation).
    """
    p = Path(path).expanduser()
    if p.is_dir():
        mds = sorted(x.name for x in p.glob("*.md"))
        raise IsADirectoryError(
            f"model spec path {p} is a directory; pass a markdown file"
            + (f", e.g. one of: {', '.join(mds[:5])}" if mds else "")
        )
    if not p.is_file():
        raise FileNotFoundError(f"model spec file not found: {p}. {_missing_file_hint(p)}")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"model spec file {p} is not valid UTF-8: {exc}") from exc
    return parse_model_spec(text, name=p.stem)


def load_spec_examples(examples_dir: str | os.PathLike[str]) -> dict[str, SpecExample]:
    """Read ``<examples_dir>/*.md`` into ``{example_id: {"section_title", "prompts"}}``.

    Each file must start with ``Examples for [^<id>] in <section title>:`` where ``<id>`` equals
    the file stem. ``prompts`` are the stripped contents of the ``<user>...</user>`` blocks in file
    order (raw markdown, HTML entities untouched); it is empty for files with no user turn.
    """
    d = Path(examples_dir).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(
            f"examples folder not found: {d}. Pass the 'examples' folder next to the model spec files "
            f"(it holds files like 092i.md)."
        )
    out: dict[str, SpecExample] = {}
    for f in sorted(d.glob("*.md")):
        text = f.read_bytes().decode("utf-8").removeprefix("\ufeff")
        first = _LINE_SPLIT.split(text, maxsplit=1)[0]
        m = _EXAMPLE_HEADER.match(first)
        if not m:
            raise ValueError(
                f"{f}:1: expected 'Examples for [^{f.stem}] in <section title>:', got {first[:80]!r}"
            )
        if m.group("id") != f.stem:
            raise ValueError(f"{f}:1: header names example {m.group('id')!r} but the file is {f.name}")
        prompts = [p.strip() for p in _USER_BLOCK.findall(text)]
        out[f.stem] = SpecExample(section_title=m.group("title").strip(), prompts=prompts)
    return out
