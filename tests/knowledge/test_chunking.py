"""Chunking plain text and Markdown, by words and by model tokens."""

from __future__ import annotations

import itertools

import pytest

from portside.server.errors import InvalidInput
from portside.server.knowledge import Chunk, MiniLMEmbedder, chunk_markdown, chunk_text, word_spans


def _check_offsets(source: str, chunks: list[Chunk]) -> None:
    for n, c in enumerate(chunks):
        assert c.index == n
        assert source[c.start : c.end] == c.text
        assert c.text == c.text.strip() and c.text


def test_windows_sizes_and_overlap() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    chunks = chunk_text(text, size=30, overlap=10)
    _check_offsets(text, chunks)
    words = [c.text.split() for c in chunks]
    assert all(len(w) <= 30 for w in words)
    assert words[0][0] == "w0" and words[-1][-1] == "w99"
    for a, b in itertools.pairwise(words):
        assert a[-10:] == b[:10]  # exactly `overlap` shared words (no sentence ends to snap to)


def test_snaps_to_sentence_and_paragraph_ends() -> None:
    text = "One two three four five six seven. Eight nine ten eleven twelve.\n\nThirteen fourteen fifteen sixteen."
    chunks = chunk_text(text, size=8, overlap=2)  # may pull back size // 4 = 2 words
    _check_offsets(text, chunks)
    assert chunks[0].text.endswith("seven.")
    sentence = "alpha beta gamma. " * 3 + "\n\n" + "delta epsilon zeta eta theta iota kappa"
    first = chunk_text(sentence, size=12, overlap=0)[0]
    assert first.text.endswith("gamma.")


def test_empty_and_small_text() -> None:
    assert chunk_text("   \n ") == []
    chunks = chunk_text("  just a few words  ")
    assert len(chunks) == 1 and chunks[0].start == 2 and chunks[0].text == "just a few words"


@pytest.mark.parametrize(("size", "overlap"), [(0, 0), (10, 10), (10, -1)])
def test_rejects_bad_sizes(size: int, overlap: int) -> None:
    with pytest.raises(InvalidInput) as info:
        chunk_text("some text", size=size, overlap=overlap)
    assert info.value.code == "invalid_chunking"


MARKDOWN = """# Guide

Intro paragraph.

## Install

Run the installer.

```sh
# not a heading
pip install portside
```

## Use

### Linux

{body}

## FAQ

Short answer.
"""


def test_markdown_sections_headings_and_fences() -> None:
    body = " ".join(f"word{i}." for i in range(120))
    source = MARKDOWN.format(body=body)
    chunks = chunk_markdown(source, size=40, overlap=5)
    _check_offsets(source, chunks)
    headings = [c.heading for c in chunks]
    assert headings[0] == "Guide"
    assert "Run the installer." in chunks[0].text  # small sections packed under the first heading
    assert not any("not a heading" in (h or "") for h in headings)
    linux = [c for c in chunks if c.heading == "Guide > Use > Linux"]
    assert len(linux) >= 3  # the long section is windowed
    assert all(len(word_spans(c.text)) <= 40 for c in chunks)
    assert chunks[-1].heading == "Guide > FAQ" or chunks[-1].text.endswith("Short answer.")
    # small neighbouring sections are packed together
    small = chunk_markdown(MARKDOWN.format(body="tiny"), size=200)
    assert len(small) == 1 and small[0].heading == "Guide"


def test_chunk_by_model_tokens(embedder: MiniLMEmbedder) -> None:
    text = "Supercalifragilistic harbour logistics coordinate tugboats. " * 40
    chunks = chunk_text(text, size=64, overlap=8, spans=embedder.token_spans)
    _check_offsets(text, chunks)
    assert len(chunks) > 3
    for c in chunks:
        assert embedder.count_tokens(c.text) <= 64 + 2
        # never cut inside a word
        assert c.start == 0 or text[c.start - 1] == " "
        assert c.end == len(text) or text[c.end] == " "
