import random
import re
from itertools import pairwise

import pytest

from memory.chunking import Chunk, chunk_document
from memory.extract import ExtractedDocument, Section, extract
from switchboard.llm.tokens import estimate_tokens


def _doc(*sections: Section) -> ExtractedDocument:
    return ExtractedDocument("T", "markdown", list(sections))


def _norm(text: str) -> str:
    return " ".join(text.split())


def _sentence(rng: random.Random, counter: list[int], words: int) -> str:
    # Every word is unique, so a chunk's place in its section (and any overlap) is unambiguous.
    out = []
    for _ in range(words):
        counter[0] += 1
        out.append(f"w{counter[0]}")
    return " ".join(out).capitalize() + rng.choice([".", "!", "?", ".", "."])


def _random_doc(seed: int) -> ExtractedDocument:
    """Sections of paragraphs of sentences of varied length, some over any budget."""
    rng = random.Random(seed)
    counter = [0]
    sections = []
    for number in range(rng.randint(1, 5)):
        paragraphs = []
        for _ in range(rng.randint(1, 6)):
            sentences = [
                _sentence(rng, counter, rng.choice([3, 8, 15, 40, 90]))
                for _ in range(rng.randint(1, 8))
            ]
            paragraphs.append(" ".join(sentences))
        # Neighbouring sections differ in heading or page, so a test can tell their chunks apart.
        heading = rng.choice([None, f"H{number}"])
        page = number + 1 if heading is None else rng.choice([None, number + 1])
        sections.append(Section(heading, "\n\n".join(paragraphs), page))
    return _doc(*sections)


def _shared_words(before: str, after: str) -> int:
    """How many words `after` starts with that `before` ends with (the overlap)."""
    first, second = before.split(), after.split()
    return max(
        (
            n
            for n in range(min(len(first), len(second)) + 1)
            if first[len(first) - n :] == second[:n]
        ),
        default=0,
    )


def _reassemble(chunks: list[Chunk]) -> str:
    """The chunks' text with each overlap taken out again."""
    words = chunks[0].text.split()
    for previous, chunk in pairwise(chunks):
        words += chunk.text.split()[_shared_words(previous.text, chunk.text) :]
    return " ".join(words)


SETTINGS = [(16, 0), (16, 8), (32, 5), (64, 16), (200, 30), (200, 0), (500, 100)]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize(("max_tokens", "overlap"), SETTINGS)
def test_invariants(seed: int, max_tokens: int, overlap: int) -> None:
    doc = _random_doc(seed)
    chunks = chunk_document(doc, max_tokens, overlap)
    assert [c.index for c in chunks] == list(range(len(chunks))), "indices contiguous"
    assert all(c.text.strip() and c.text == c.text.strip() for c in chunks), "no empty chunks"
    assert all(c.tokens == estimate_tokens(c.text) <= max_tokens for c in chunks)
    assert chunks == chunk_document(doc, max_tokens, overlap), "deterministic"
    position = 0
    for section in doc.sections:
        own: list[Chunk] = []
        for chunk in chunks[position:]:
            if (chunk.section, chunk.page) != (section.heading, section.page):
                break
            own.append(chunk)
        assert own, "every section with text has chunks"
        position += len(own)
        for chunk in own:
            assert _norm(chunk.text) in _norm(section.text), "a chunk is a span of its section"
        assert _reassemble(own) == _norm(section.text), "nothing lost, nothing repeated"
    assert position == len(chunks)


@pytest.mark.parametrize("seed", range(12))
def test_neighbours_overlap_by_whole_sentences_within_the_budget(seed: int) -> None:
    doc = _random_doc(seed)
    chunks = chunk_document(doc, max_tokens=64, overlap_tokens=16)
    pairs = [(a, b) for a, b in pairwise(chunks) if (a.section, a.page) == (b.section, b.page)]
    overlapping = 0
    for a, b in pairs:
        shared = _shared_words(a.text, b.text)
        overlap = " ".join(b.text.split()[:shared])
        assert estimate_tokens(overlap) <= 16
        if overlap:
            overlapping += 1
            head = " ".join(a.text.split()[: len(a.text.split()) - shared])
            # Whole sentences; or, when the last sentence alone is over budget, words of it only.
            assert head.endswith((".", "!", "?")) or not re.search(r"[.!?] ", overlap)
    assert overlapping >= len(pairs) // 2


def test_overlap_repeats_the_last_sentences_of_the_previous_chunk() -> None:
    sentences = [f"Sentence number {i} talks about the funicular railway." for i in range(30)]
    doc = _doc(Section("A", " ".join(sentences), None))
    chunks = chunk_document(doc, max_tokens=64, overlap_tokens=20)
    assert len(chunks) > 3
    for previous, chunk in pairwise(chunks):
        last = previous.text.rsplit(". ", 1)[-1]
        assert chunk.text.startswith(last), "the previous chunk's last sentence comes first"
        assert chunk.text != last


def test_overlap_falls_back_to_words_when_the_last_sentence_is_too_long() -> None:
    words = [f"w{i}" for i in range(60)]
    doc = _doc(Section(None, " ".join(words) + ".", None))
    chunks = chunk_document(doc, max_tokens=20, overlap_tokens=5)
    first, second = chunks[0].text.split(), chunks[1].text.split()
    assert 1 <= len(set(first) & set(second)) <= 5
    assert second[0] in first and second[0] != first[0]


def test_zero_overlap_partitions_the_text() -> None:
    doc = _random_doc(3)
    chunks = chunk_document(doc, max_tokens=40, overlap_tokens=0)
    joined = " ".join(_norm(c.text) for c in chunks)
    assert joined == " ".join(_norm(s.text) for s in doc.sections)


def test_small_paragraphs_pack_together_and_stay_whole() -> None:
    paragraphs = [f"Paragraph {i} is short but not tiny at all." for i in range(12)]
    doc = _doc(Section(None, "\n\n".join(paragraphs), None))
    chunks = chunk_document(doc, max_tokens=40, overlap_tokens=0)
    assert 1 < len(chunks) < len(paragraphs)
    for chunk in chunks:
        assert all(part in paragraphs for part in chunk.text.split("\n\n")), "never cut"
    assert [c.text for c in chunk_document(_doc(Section(None, "One.\n\nTwo.", None)), 32, 0)] == [
        "One.\n\nTwo."
    ]


def test_a_long_paragraph_is_cut_at_sentence_ends() -> None:
    sentences = [f"Clause {i} of the long paragraph ends here." for i in range(40)]
    doc = _doc(Section(None, " ".join(sentences), None))
    for chunk in chunk_document(doc, max_tokens=50, overlap_tokens=0):
        assert chunk.text.endswith("ends here.")
        assert all(s + "." in sentences for s in chunk.text.rstrip(".").split(". "))


def test_lines_of_a_long_list_stay_whole_and_keep_their_line_breaks() -> None:
    items = [f"- item {i} with a few words" for i in range(30)]
    doc = _doc(Section(None, "\n".join(items), None))
    chunks = chunk_document(doc, max_tokens=40, overlap_tokens=0)
    assert len(chunks) > 1
    for chunk in chunks:
        assert all(line in items for line in chunk.text.split("\n"))


def test_a_sentence_longer_than_the_budget_is_cut_at_words() -> None:
    doc = _doc(Section(None, " ".join(["word"] * 100), None))
    chunks = chunk_document(doc, max_tokens=20, overlap_tokens=0)
    assert [c.tokens for c in chunks] == [20] * 5
    assert all(c.text == " ".join(["word"] * 20) for c in chunks)


def test_a_word_longer_than_the_budget_is_cut_inside() -> None:
    blob = "QUJD" * 200  # 800 characters with no white space: 134 tokens
    doc = _doc(Section(None, f"Before. {blob} after.", None))
    chunks = chunk_document(doc, max_tokens=16, overlap_tokens=0)
    assert all(c.tokens <= 16 for c in chunks)
    assert "".join(c.text for c in chunks).replace(" ", "") == f"Before.{blob}after."


def test_sections_and_pages_are_never_mixed() -> None:
    doc = _doc(
        Section("Same", "Alpha text.", 1),
        Section("Same", "Beta text.", 2),
        Section(None, "Gamma text.", None),
        Section("Other", "Delta text.", None),
    )
    chunks = chunk_document(doc, max_tokens=200, overlap_tokens=30)
    assert [(c.index, c.text, c.section, c.page) for c in chunks] == [
        (0, "Alpha text.", "Same", 1),
        (1, "Beta text.", "Same", 2),
        (2, "Gamma text.", None, None),
        (3, "Delta text.", "Other", None),
    ]


def test_headings_are_kept_out_of_the_text() -> None:
    doc = extract("g.md", b"# Guide\n\n## Winter\n\nSnow chains are fitted in November.\n")
    (chunk,) = chunk_document(doc)
    assert chunk.text == "Snow chains are fitted in November."
    assert chunk.section == "Guide > Winter"


def test_a_document_without_sections_has_no_chunks() -> None:
    assert chunk_document(_doc()) == []
    assert chunk_document(_doc(Section(None, " \n\n ", None))) == []


@pytest.mark.parametrize(
    ("max_tokens", "overlap"), [(15, 0), (0, 0), (-5, 0), (32, 32), (32, 40), (32, -1)]
)
def test_bad_arguments(max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_document(_doc(Section(None, "Text.", None)), max_tokens, overlap)


def test_the_smallest_budget_works() -> None:
    chunks = chunk_document(_random_doc(1), max_tokens=16, overlap_tokens=15)
    assert chunks and all(c.tokens <= 16 for c in chunks)
