"""Structure-aware chunking: whole paragraphs packed up to a token budget, never across two
sections or pages, with a few sentences of overlap between neighbours."""

from __future__ import annotations

import re
from dataclasses import dataclass

from memory.extract import ExtractedDocument
from switchboard.llm.tokens import estimate_tokens

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, slots=True)
class Chunk:
    index: int
    text: str
    section: str | None
    page: int | None
    tokens: int


def chunk_document(
    doc: ExtractedDocument, max_tokens: int = 200, overlap_tokens: int = 30
) -> list[Chunk]:
    """The document's chunks in order. A chunk holds whole paragraphs while they fit in
    `max_tokens`; a longer paragraph is cut at sentence ends (then at words); each chunk after
    the first of a section starts with about `overlap_tokens` of its predecessor's last
    sentences."""
    if max_tokens < 16:
        raise ValueError("max_tokens must be at least 16")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError("overlap_tokens must be at least 0 and smaller than max_tokens")
    chunks: list[Chunk] = []
    for section in doc.sections:
        for text in _pack(_units(section.text, max_tokens), max_tokens, overlap_tokens):
            chunks.append(
                Chunk(len(chunks), text, section.heading, section.page, estimate_tokens(text))
            )
    return chunks


def _units(text: str, max_tokens: int) -> list[list[str]]:
    """Paragraphs as lists of sentences, each sentence within `max_tokens`."""
    paragraphs = []
    for paragraph in text.split("\n\n"):
        sentences: list[str] = []
        for sentence in _SENTENCE_END.split(paragraph.strip()):
            if sentence:
                sentences += _split_words(sentence, max_tokens)
        if sentences:
            paragraphs.append(sentences)
    return paragraphs


def _split_words(sentence: str, max_tokens: int) -> list[str]:
    if estimate_tokens(sentence) <= max_tokens:
        return [sentence]
    pieces, current = [], ""
    for word in sentence.split():
        candidate = f"{current} {word}".strip()
        if current and estimate_tokens(candidate) > max_tokens:
            pieces.append(current)
            candidate = word
        current = candidate
    return [*pieces, current] if current else pieces


def _pack(paragraphs: list[list[str]], max_tokens: int, overlap_tokens: int) -> list[str]:
    chunks: list[str] = []
    current: list[str] = []  # sentences of the chunk being built
    breaks: set[int] = set()  # positions in `current` where a new paragraph starts

    def emit() -> list[str]:
        text = _join(current, breaks)
        chunks.append(text)
        return _tail(current, overlap_tokens)

    for paragraph in paragraphs:
        whole = estimate_tokens(" ".join(paragraph))
        if current and estimate_tokens(_join(current, breaks)) + whole <= max_tokens:
            breaks.add(len(current))
            current += paragraph
            continue
        for position, sentence in enumerate(paragraph):
            joined = f"{_join(current, breaks)} {sentence}" if current else sentence
            if current and estimate_tokens(joined) > max_tokens:
                carried = emit()
                current, breaks = carried, set()
                while current and estimate_tokens(" ".join([*current, sentence])) > max_tokens:
                    current.pop(0)  # the overlap must leave room for the new sentence
            if position == 0 and current:
                breaks.add(len(current))
            current.append(sentence)
    if current:
        emit()
    return chunks


def _join(sentences: list[str], breaks: set[int]) -> str:
    out = ""
    for position, sentence in enumerate(sentences):
        if position == 0:
            out = sentence
        else:
            out += ("\n\n" if position in breaks else " ") + sentence
    return out


def _tail(sentences: list[str], budget: int) -> list[str]:
    """The last sentences of a chunk that fit in `budget` tokens (the overlap)."""
    if budget == 0:
        return []
    tail: list[str] = []
    for sentence in reversed(sentences):
        if estimate_tokens(" ".join([sentence, *tail])) > budget:
            break
        tail.insert(0, sentence)
    return tail
