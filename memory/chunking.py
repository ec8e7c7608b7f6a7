"""Structure-aware chunking: whole paragraphs packed up to a token budget, never across two
sections or pages, with a few trailing sentences of overlap between neighbours.

Token counts are `estimate_tokens`, which counts words and punctuation marks and ignores white
space; so the count of pieces joined by white space is the sum of their counts, and packing can
add numbers instead of re-counting text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from memory.extract import ExtractedDocument
from switchboard.llm.tokens import estimate_tokens

MIN_MAX_TOKENS = 16

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
# Where a paragraph may be cut: after a sentence's end (possibly closed by a quote or bracket),
# or at a line break (list items, table rows and code lines keep their own lines).
_SENTENCE_BREAK = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'\u201d\u2019)\]]))\s+|\s*\n\s*")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int  # 0-based position in the document
    text: str
    section: str | None  # the section's heading path
    page: int | None
    tokens: int  # estimate_tokens(text)


@dataclass(frozen=True, slots=True)
class _Piece:
    """The smallest unit packed: a paragraph, a sentence, a word or a slice of a word."""

    text: str
    tokens: int
    joiner: str  # what separates it from the piece before it in the same chunk


def chunk_document(
    doc: ExtractedDocument, max_tokens: int = 200, overlap_tokens: int = 30
) -> list[Chunk]:
    """The document's chunks, in order, indexed 0, 1, 2, ...

    Each chunk lies within one section (so one page) and holds at most `max_tokens` tokens.
    Paragraphs are packed whole while they fit; a longer paragraph is cut at sentence ends, then
    at words, then (a "word" longer than the budget, such as an encoded blob) inside the word.
    Every chunk after the first of its section starts with the trailing whole sentences (or,
    failing that, words) of the one before, at most `overlap_tokens` of them; 0 turns overlap
    off. No chunk is empty and the result depends only on the arguments.

    Raises `ValueError` unless `max_tokens >= 16` and `0 <= overlap_tokens < max_tokens`.
    """
    if max_tokens < MIN_MAX_TOKENS:
        raise ValueError(f"max_tokens must be at least {MIN_MAX_TOKENS}, not {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(
            f"overlap_tokens must be at least 0 and below max_tokens ({max_tokens}), "
            f"not {overlap_tokens}"
        )
    chunks: list[Chunk] = []
    for section in doc.sections:
        for text in _pack(_pieces(section.text, max_tokens), max_tokens, overlap_tokens):
            chunks.append(
                Chunk(len(chunks), text, section.heading, section.page, estimate_tokens(text))
            )
    return chunks


def _pieces(text: str, max_tokens: int) -> Iterator[_Piece]:
    """The section's text as pieces of at most `max_tokens` each, as coarse as they can be."""
    for paragraph in _PARAGRAPH_BREAK.split(text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        tokens = estimate_tokens(paragraph)
        if tokens <= max_tokens:
            yield _Piece(paragraph, tokens, "\n\n")
            continue
        joiner = "\n\n"
        for sentence, next_joiner in _sentences(paragraph):
            yield from _fit(sentence, joiner, max_tokens)
            joiner = next_joiner


def _sentences(paragraph: str) -> Iterator[tuple[str, str]]:
    """Each sentence (or line) with the joiner that belongs before the next one."""
    start = 0
    for match in _SENTENCE_BREAK.finditer(paragraph):
        if match.start() > start:
            yield paragraph[start : match.start()], "\n" if "\n" in match.group() else " "
        start = match.end()
    if start < len(paragraph):
        yield paragraph[start:], " "


def _fit(sentence: str, joiner: str, max_tokens: int) -> Iterator[_Piece]:
    tokens = estimate_tokens(sentence)
    if tokens <= max_tokens:
        yield _Piece(sentence, tokens, joiner)
        return
    for word in sentence.split():
        tokens = estimate_tokens(word)
        if tokens <= max_tokens:
            yield _Piece(word, tokens, joiner)
        else:
            yield from _slices(word, joiner, max_tokens)
        joiner = " "


def _slices(word: str, joiner: str, max_tokens: int) -> Iterator[_Piece]:
    """A word too long for any chunk, cut into the longest prefixes that fit. Slices join with
    nothing, so the text stays as written; rejoining can only lower the count, never raise it."""
    while word:
        # estimate_tokens of a prefix grows with its length, so bisect for the longest that fits.
        low, high = 1, len(word)
        while low < high:
            middle = (low + high + 1) // 2
            if estimate_tokens(word[:middle]) <= max_tokens:
                low = middle
            else:
                high = middle - 1
        yield _Piece(word[:low], estimate_tokens(word[:low]), joiner)
        word, joiner = word[low:], ""


def _pack(pieces: Iterator[_Piece], max_tokens: int, overlap_tokens: int) -> list[str]:
    """Greedy packing of one section's pieces; each chunk after the first opens with the tail of
    the one before, shortened as needed to leave room for the piece that did not fit."""
    chunks: list[str] = []
    text, tokens = "", 0
    for piece in pieces:
        if not text:
            text, tokens = piece.text, piece.tokens
        elif tokens + piece.tokens <= max_tokens:
            text, tokens = text + piece.joiner + piece.text, tokens + piece.tokens
        else:
            chunks.append(text)
            tail, tail_tokens = _tail(text, min(overlap_tokens, max_tokens - piece.tokens))
            if tail:
                text, tokens = tail + piece.joiner + piece.text, tail_tokens + piece.tokens
            else:
                text, tokens = piece.text, piece.tokens
    if text:
        chunks.append(text)
    return chunks


def _tail(text: str, budget: int) -> tuple[str, int]:
    """The longest run of whole trailing sentences of `text` within `budget` tokens, or when the
    last sentence alone is over budget, of its trailing words; with its token count. Never all
    of `text`; empty when nothing fits."""
    if budget <= 0:
        return "", 0
    # Start 0 is left out: the whole of the previous chunk again would add nothing.
    starts = [match.end() for match in _SENTENCE_BREAK.finditer(text)]
    start, tokens = _suffix_within(text, starts, budget)
    if start is None:
        last = starts[-1] if starts else 0
        words = [m.start() for m in _WORD.finditer(text, last) if m.start() > 0]
        start, tokens = _suffix_within(text, words, budget)
    if start is None:
        return "", 0
    return text[start:], tokens


def _suffix_within(text: str, starts: list[int], budget: int) -> tuple[int | None, int]:
    """The earliest of `starts` (ascending, each after white space) from which the rest of
    `text` fits in `budget` tokens, with that count; None when not even the last one does."""
    best: int | None = None
    total, end = 0, len(text)
    for start in reversed(starts):
        total += estimate_tokens(text[start:end])
        if total > budget:
            break
        best, end = start, start
    return best, (estimate_tokens(text[best:]) if best is not None else 0)
