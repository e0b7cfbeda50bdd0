"""Split plain text and Markdown into overlapping chunks that remember where they came from.

Sizes are counted in *units*: whitespace-separated words by default, or model tokens when a span
function such as :meth:`MiniLMEmbedder.token_spans` is passed. Every :class:`Chunk` holds character
offsets into the source, and ``source[chunk.start:chunk.end] == chunk.text`` always holds.

A window that would end mid-paragraph is pulled back (by at most a quarter of its size) to the end of a
paragraph, else of a sentence, else to a gap between words, so that chunks read naturally.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from portside.server.errors import InvalidInput

__all__ = ["DEFAULT_OVERLAP", "DEFAULT_SIZE", "Chunk", "SpanFn", "chunk_markdown", "chunk_text", "word_spans"]

#: Default chunk size in units (words): about 210 MiniLM tokens, under its 256-token limit.
DEFAULT_SIZE = 160
#: Default overlap between consecutive windows, in units.
DEFAULT_OVERLAP = 32

#: Returns the ``(start, end)`` character span of each unit of a text, in order, without overlaps.
SpanFn = Callable[[str], Sequence[tuple[int, int]]]

_WORD = re.compile(r"\S+")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SENTENCE_END = frozenset(".!?;:")


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a source text: ``source[start:end] == text``."""

    index: int
    text: str
    start: int
    end: int
    heading: str | None = None
    """Markdown heading path of the section the chunk starts in, e.g. ``"Setup > Linux"``."""


def word_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the whitespace-separated words of ``text``."""
    return [m.span() for m in _WORD.finditer(text)]


def _check(size: int, overlap: int) -> None:
    if size < 1:
        raise InvalidInput("chunk size must be >= 1", code="invalid_chunking")
    if overlap < 0 or overlap >= size:
        raise InvalidInput("chunk overlap must be >= 0 and smaller than the size", code="invalid_chunking")


def _cut(text: str, spans: Sequence[tuple[int, int]], lo: int, hi: int) -> int:
    """Best end (exclusive unit index) in ``[lo, hi]`` for a window; ``hi`` if nothing better."""
    best_sentence = best_gap = -1
    for k in range(hi, lo - 1, -1):
        prev_end, next_start = spans[k - 1][1], spans[k][0]
        if next_start <= prev_end:
            continue  # inside a word (sub-word tokens)
        between = text[prev_end:next_start]
        if between.count("\n") >= 2:
            return k
        if best_sentence < 0 and text[prev_end - 1] in _SENTENCE_END:
            best_sentence = k
        if best_gap < 0:
            best_gap = k
    if best_sentence > 0:
        return best_sentence
    return best_gap if best_gap > 0 else hi


def chunk_text(
    text: str,
    *,
    size: int = DEFAULT_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    spans: SpanFn | None = None,
    heading: str | None = None,
    offset: int = 0,
    first_index: int = 0,
) -> list[Chunk]:
    """Split ``text`` into windows of at most ``size`` units, consecutive windows sharing ``overlap`` units.

    ``offset`` is added to every chunk's ``start``/``end`` (for a text that is a slice of a larger source);
    ``first_index`` numbers the first chunk. Whitespace-only text gives no chunk.
    """
    _check(size, overlap)
    units = list((spans or word_spans)(text))
    chunks: list[Chunk] = []
    n = len(units)
    i = 0
    while i < n:
        j = min(i + size, n)
        if j < n:
            j = _cut(text, units, max(i + 1, j - max(1, size // 4)), j)
        start, end = units[i][0], units[j - 1][1]
        chunks.append(Chunk(first_index + len(chunks), text[start:end], start + offset, end + offset, heading))
        if j >= n:
            break
        nxt = max(j - overlap, i + 1)
        while nxt < j and units[nxt][0] <= units[nxt - 1][1]:
            nxt += 1  # start the overlap on a whole word, not a sub-word token
        i = nxt
    return chunks


@dataclass(slots=True)
class _Section:
    start: int
    end: int
    heading: str | None


def _sections(text: str) -> list[_Section]:
    """ATX-heading sections of a Markdown text (headings inside code fences are ignored)."""
    sections: list[_Section] = []
    path: list[tuple[int, str]] = []
    fence: str | None = None
    current = _Section(0, 0, None)
    pos = 0
    for line in text.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        fence_match = _FENCE.match(stripped)
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
        elif fence_match:
            fence = fence_match.group(1)
        else:
            heading = _HEADING.match(stripped)
            if heading:
                current.end = pos
                sections.append(current)
                level = len(heading.group(1))
                path = [(lvl, title) for lvl, title in path if lvl < level]
                path.append((level, heading.group(2).strip()))
                current = _Section(pos, pos, " > ".join(title for _, title in path if title))
        pos += len(line)
    current.end = pos
    sections.append(current)
    return [s for s in sections if text[s.start : s.end].strip()]


def chunk_markdown(
    text: str,
    *,
    size: int = DEFAULT_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    spans: SpanFn | None = None,
) -> list[Chunk]:
    """Chunk Markdown along its headings.

    Consecutive small sections are packed into one chunk while they fit in ``size`` units; a section larger
    than ``size`` is split with :func:`chunk_text` (windows with ``overlap``). Each chunk carries the heading
    path of the section it starts in.
    """
    _check(size, overlap)
    span_fn = spans or word_spans
    chunks: list[Chunk] = []
    group: list[_Section] = []
    group_units = 0

    def flush() -> None:
        nonlocal group, group_units
        if group:
            start, end = group[0].start, group[-1].end
            piece = text[start:end]
            lead = len(piece) - len(piece.lstrip())
            body = piece.strip()
            chunks.append(Chunk(len(chunks), body, start + lead, start + lead + len(body), group[0].heading))
        group, group_units = [], 0

    for section in _sections(text):
        piece = text[section.start : section.end]
        count = len(span_fn(piece))
        if count > size:
            flush()
            chunks.extend(
                chunk_text(
                    piece,
                    size=size,
                    overlap=overlap,
                    spans=span_fn,
                    heading=section.heading,
                    offset=section.start,
                    first_index=len(chunks),
                )
            )
            continue
        if group_units + count > size:
            flush()
        group.append(section)
        group_units += count
    flush()
    return chunks
