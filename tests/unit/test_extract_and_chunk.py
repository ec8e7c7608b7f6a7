import pytest

from memory.chunking import chunk_document
from memory.extract import (
    CorruptDocument,
    EmptyDocument,
    ExtractedDocument,
    Section,
    UnsupportedDocument,
    extract,
    extract_text,
)
from switchboard.llm.tokens import estimate_tokens


def _pdf(text: str) -> bytes:
    """A minimal one-page PDF showing `text` in Helvetica."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return out


def test_markdown_sections_follow_the_heading_path() -> None:
    doc = extract(
        "a.md",
        b"---\nx: 1\n---\n# Rail\n\nIntro.\n\n## Cars\n\nWren.\n\n### Brakes\n\nShoes.\n\n## Track\n\nGauge.\n",
    )
    assert doc.title == "Rail" and doc.format == "markdown"
    assert [(s.heading, s.text) for s in doc.sections] == [
        ("Rail", "Intro."),
        ("Rail > Cars", "Wren."),
        ("Rail > Cars > Brakes", "Shoes."),
        ("Rail > Track", "Gauge."),
    ]


def test_html_drops_boilerplate() -> None:
    page = (
        b"<html><head><title>Visit us</title><style>p{}</style></head><body>"
        b"<nav>Home</nav><script>alert(1)</script><h1>Centre</h1><p>Opens at  09:30 &amp; "
        b"closes late.</p><ul><li>Cafe</li><li>Shop</li></ul><footer>(c)</footer></body></html>"
    )
    doc = extract("v.HTML", page)
    assert doc.title == "Visit us"
    assert doc.sections == [
        Section("Centre", "Opens at 09:30 & closes late.\n\nCafe\n\nShop", None)
    ]


def test_plain_text_and_pdf() -> None:
    doc = extract("notes.txt", "\ufeffHydro notes\n\nTwo Pelton wheels.\n".encode())
    assert (
        doc.title == "Hydro notes" and doc.sections[0].text == "Hydro notes\n\nTwo Pelton wheels."
    )
    pdf = extract("scan.pdf", _pdf("The dome turns on twelve bogies."))
    assert pdf.format == "pdf" and pdf.sections[0].page == 1
    assert "twelve bogies" in pdf.sections[0].text


@pytest.mark.parametrize(
    ("name", "data", "error"),
    [
        ("a.docx", b"PK", UnsupportedDocument),
        ("noext", b"hello", UnsupportedDocument),
        ("a.pdf", b"%PDF-1.4 garbage", CorruptDocument),
        ("a.txt", b"\xff\xfe\xfa", CorruptDocument),
        ("a.md", b"  \n\n ", EmptyDocument),
        ("a.html", b"<script>only()</script>", EmptyDocument),
    ],
)
def test_bad_files(name: str, data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error, match=name.split(".")[0]):
        extract(name, data)


def test_raw_text_is_markdown_and_keeps_the_given_title() -> None:
    doc = extract_text("# Heading\n\nBody.", title="Given")
    assert doc.title == "Given" and doc.sections[0].heading == "Heading"
    with pytest.raises(EmptyDocument):
        extract_text("   ")


def _doc(*sections: Section) -> ExtractedDocument:
    return ExtractedDocument("T", "markdown", list(sections))


def test_chunks_fit_the_budget_overlap_and_keep_sections_apart() -> None:
    sentences = " ".join(
        f"Sentence number {i} talks about the funicular railway." for i in range(60)
    )
    doc = _doc(
        Section("A", sentences + "\n\nShort closing paragraph.", None),
        Section("B", "Other part.", 2),
    )
    chunks = chunk_document(doc, max_tokens=64, overlap_tokens=16)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.tokens <= 64 for c in chunks)
    assert chunks[-1].section == "B" and chunks[-1].text == "Other part." and chunks[-1].page == 2
    first, second = chunks[0].text, chunks[1].text
    last_sentence = first.rsplit(". ", 1)[-1]
    assert second.startswith(last_sentence.rstrip(".")), "neighbours overlap"
    assert all(c.section == "A" for c in chunks[:-1])


def test_no_overlap_and_small_paragraphs_pack_together() -> None:
    doc = _doc(Section(None, "One.\n\nTwo.\n\nThree.", None))
    assert [c.text for c in chunk_document(doc, 32, 0)] == ["One.\n\nTwo.\n\nThree."]


def test_a_sentence_longer_than_the_budget_is_cut_at_words() -> None:
    words = " ".join(["word"] * 100)
    chunks = chunk_document(_doc(Section(None, words, None)), max_tokens=20, overlap_tokens=0)
    assert len(chunks) == 5 and all(estimate_tokens(c.text) <= 20 for c in chunks)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        chunk_document(_doc(), max_tokens=8)
    with pytest.raises(ValueError):
        chunk_document(_doc(), max_tokens=32, overlap_tokens=32)
