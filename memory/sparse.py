"""BM25-style sparse vectors for Qdrant's sparse index.

A document's vector holds, per term, BM25's saturated term frequency; Qdrant applies the IDF
(the collection's sparse vector has `modifier=IDF`), so the dot product with a query vector of
ones over the query's terms is the BM25 score. Terms are hashed to 31-bit indices, so no
vocabulary has to be kept.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass

_APOSTROPHES = "'\u2019"
_WORD = re.compile(rf"[a-z0-9]+(?:[{_APOSTROPHES}][a-z]+)?")
_K1 = 1.2
_B = 0.75
_AVERAGE_LENGTH = 120.0  # typical chunk length in terms; stands in for the corpus average

# Words that carry no retrieval signal in English prose.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself no nor not now of off on once only or other our ours ourselves out
    over own same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves""".split()  # noqa: SIM905
)


@dataclass(frozen=True, slots=True)
class SparseVector:
    indices: list[int]
    values: list[float]


def terms(text: str) -> list[str]:
    """The index terms of `text`: lower-cased words and numbers, stop words removed, with a light
    plural/possessive folding so that "cars" matches "car"."""
    out = []
    for word in _WORD.findall(text.lower()):
        word = word.replace("\u2019", "'")
        if word.endswith("'s"):
            word = word[:-2]
        if word in STOPWORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


def _index(term: str) -> int:
    return zlib.crc32(term.encode()) & 0x7FFFFFFF


def encode_document(text: str) -> SparseVector:
    """The BM25 term-frequency part for a chunk."""
    counts = Counter(_index(t) for t in terms(text))
    length = sum(counts.values())
    norm = _K1 * (1 - _B + _B * length / _AVERAGE_LENGTH)
    indices = sorted(counts)
    values = [counts[i] * (_K1 + 1) / (counts[i] + norm) for i in indices]
    return SparseVector(indices, values)


def encode_query(text: str) -> SparseVector:
    """A query's vector: one per distinct term (IDF comes from Qdrant)."""
    indices = sorted({_index(t) for t in terms(text)})
    return SparseVector(indices, [1.0] * len(indices))
