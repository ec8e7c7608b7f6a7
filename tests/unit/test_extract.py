import io

import pytest
from pypdf import PdfReader, PdfWriter

from memory.extract import (
    SUPPORTED_SUFFIXES,
    CorruptDocument,
    EmptyDocument,
    ExtractedDocument,
    Section,
    UnsupportedDocument,
    extract,
    extract_text,
)
from switchboard.errors import InvalidRequest


def _pdf_string(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"({escaped})".encode("latin-1")


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A minimal PDF written by hand: one Helvetica line per string, one page per list."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",  # the page tree, once the pages' numbers are known
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for lines in pages:
        stream = b"BT /F1 12 Tf 14 TL 72 720 Td " + b" T* ".join(
            _pdf_string(line) + b" Tj" for line in lines
        )
        stream += b" ET"
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % (len(objects))
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    info = b""
    if title is not None:
        objects.append(b"<< /Title " + _pdf_string(title) + b" >>")
        info = b" /Info %d 0 R" % len(objects)
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R%s >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        info,
        xref,
    )
    return out


def encrypt(pdf: bytes, user_password: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_the_hand_made_pdf_is_readable_by_pypdf() -> None:
    reader = PdfReader(io.BytesIO(make_pdf([["Hello (PDF)", "second line"]], title="Doc")))
    assert reader.pages[0].extract_text().split("\n") == ["Hello (PDF)", "second line"]
    assert reader.metadata is not None and reader.metadata.title == "Doc"


# Markdown


def test_markdown_sections_carry_the_heading_path() -> None:
    doc = extract(
        "guide.md",
        b"# Rail\n\nIntro.\n\n## Cars\n\nWren.\n\n### Brakes\n\nShoes.\n\n## Track ##\n\nGauge.\n\n"
        b"# Second top\n\nEnd.\n",
    )
    assert doc == ExtractedDocument(
        "Rail",
        "markdown",
        [
            Section("Rail", "Intro.", None),
            Section("Rail > Cars", "Wren.", None),
            Section("Rail > Cars > Brakes", "Shoes.", None),
            Section("Rail > Track", "Gauge.", None),
            Section("Second top", "End.", None),
        ],
    )


def test_markdown_text_before_any_heading_has_no_heading_and_skipped_levels_work() -> None:
    doc = extract("a.markdown", b"Preface.\n\n### Deep\n\nx\n\n## Mid\n\ny\n")
    assert [(s.heading, s.text) for s in doc.sections] == [
        (None, "Preface."),
        ("Deep", "x"),
        ("Mid", "y"),
    ]
    assert doc.title == "a", "no H1: the file stem"


def test_markdown_front_matter_is_ignored() -> None:
    doc = extract("f.md", b"---\ntitle: Front\ntags: [a]\n---\n# Real\n\nBody.\n")
    assert doc.title == "Real"
    assert doc.sections == [Section("Real", "Body.", None)]


def test_markdown_code_fences_lose_their_backticks_but_keep_their_content() -> None:
    doc = extract(
        "c.md",
        b"# Code\n\nBefore.\n\n```python\n# a comment, not a heading\nx = 1\n\ny = 2\n```\n\n"
        b"~~~\nplain\n~~~\n\nAfter.\n",
    )
    assert doc.sections == [
        Section(
            "Code",
            "Before.\n\n# a comment, not a heading\nx = 1\ny = 2\n\nplain\n\nAfter.",
            None,
        )
    ]


def test_markdown_lists_wrapped_prose_and_setext_headings() -> None:
    doc = extract(
        "l.md",
        b"Title\n=====\n\nWrapped prose\ncontinues here.\n\n- one\n  more of one\n- two\n"
        b"1. three\n\nSub\n---\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    )
    assert doc.title == "Title"
    assert doc.sections == [
        Section(
            "Title", "Wrapped prose continues here.\n\n- one more of one\n- two\n1. three", None
        ),
        Section("Title > Sub", "| a | b |\n|---|---|\n| 1 | 2 |", None),
    ]


def test_markdown_indented_code_keeps_its_lines_and_is_not_read_as_headings() -> None:
    doc = extract("i.md", b"# T\n\nText:\n\n   # a comment\n   if x:\n       y()\n")
    assert doc.sections == [Section("T", "Text:\n\n# a comment\nif x:\n    y()", None)]


def test_markdown_accepts_a_bom_and_windows_line_ends() -> None:
    doc = extract("w.MD", "\ufeff# Über\r\n\r\nZeile eins\r\nZeile zwei\r\n".encode())
    assert doc.title == "Über"
    assert doc.sections == [Section("Über", "Zeile eins Zeile zwei", None)]


# Plain text


def test_plain_text_is_one_section_of_paragraphs() -> None:
    doc = extract(
        "notes.TXT", b"Hydro notes\n\nTwo Pelton wheels\ndrive the   generators.\n\n\n  Third.  \n"
    )
    assert doc == ExtractedDocument(
        "Hydro notes",
        "text",
        [Section(None, "Hydro notes\n\nTwo Pelton wheels drive the generators.\n\nThird.", None)],
    )


def test_plain_text_title_is_the_stem_when_the_first_line_is_long() -> None:
    doc = extract("long.text", ("word " * 30).encode())
    assert doc.title == "long" and doc.format == "text"


# HTML


def test_html_boilerplate_is_ignored() -> None:
    page = b"""<!DOCTYPE html><html><head><title>Visit  us</title>
    <style>p { color: red }</style><script>var tracking = 1;</script></head><body>
    <header><a href="/">Site name</a></header>
    <nav><ul><li>Home</li><li>About</li></ul></nav>
    <noscript>Enable JavaScript</noscript><template><p>Hidden template</p></template>
    <svg><title>icon title</title><text>svg text</text></svg>
    <h1>Centre</h1><p>Opens at  09:30 &amp; closes
       late &mdash; daily.</p>
    <ul><li>Caf&eacute;</li><li>Shop</li></ul>
    <footer>&copy; 2024 Site</footer><script>alert(1)</script></body></html>"""
    doc = extract("visit.html", page)
    assert doc.title == "Visit us"
    assert doc.sections == [
        Section("Centre", "Opens at 09:30 & closes late \u2014 daily.\n\nCafé\n\nShop", None)
    ]


def test_html_headings_make_paths_and_blocks_make_paragraphs() -> None:
    page = b"""<body><p>Lead.</p><h1>Guide</h1><h2>Part <em>one</em></h2>
    <p>Hel<b>lo</b> there.</p><blockquote>Quoted.</blockquote>
    <table><tr><th>Key</th><td>Value</td></tr></table><dl><dt>Term</dt><dd>Meaning</dd></dl>
    <h3>Detail</h3><pre>  def f():\n      return 1\n</pre><p>After.</p>
    <h2>Part two</h2><div>Loose text</div></body>"""
    doc = extract("g.htm", page)
    assert doc.title == "Guide", "no <title>: the first H1"
    assert doc.sections == [
        Section(None, "Lead.", None),
        Section(
            "Guide > Part one",
            "Hello there.\n\nQuoted.\n\nKey\n\nValue\n\nTerm\n\nMeaning",
            None,
        ),
        Section("Guide > Part one > Detail", "def f():\n    return 1\n\nAfter.", None),
        Section("Guide > Part two", "Loose text", None),
    ]


def test_html_keeps_an_articles_own_header() -> None:
    page = b"""<body><header>Site banner</header><main><article><header><h1>Post</h1>
    <p>By Ann</p></header><p>Body.</p><footer>Tags: a</footer></article></main>
    <footer>Site footer</footer></body>"""
    doc = extract("p.html", page)
    assert doc.title == "Post"
    assert doc.sections == [Section("Post", "By Ann\n\nBody.\n\nTags: a", None)]


def test_html_title_falls_back_to_the_stem() -> None:
    assert extract("bare.html", b"<p>Just text</p>").title == "bare"


# PDF


def test_pdf_has_one_section_per_page_with_its_number() -> None:
    pdf = make_pdf(
        [
            ["The dome turns on twelve bogies.", "It was built in 1902."],
            [],
            ["Page three holds the index."],
        ],
        title="Observatory",
    )
    doc = extract("scan.PDF", pdf)
    assert doc.title == "Observatory" and doc.format == "pdf"
    assert [(s.page, s.heading) for s in doc.sections] == [(1, None), (3, None)]
    # The first line is the page's widest, so it reads as wrapped, not as a paragraph's end.
    assert doc.sections[0].text == "The dome turns on twelve bogies. It was built in 1902."
    assert doc.sections[1].text == "Page three holds the index."


def test_pdf_lines_without_blank_lines_are_grouped_into_paragraphs() -> None:
    lines = [
        "A paragraph that wraps over several lines of the page and goes",
        "on for a while before it finally comes to its end right here.",
        "Short last line.",
        "A second paragraph starts here and also runs across the full",
        "width of the page.",
        "- a bullet item",
        "- another bullet",
    ]
    doc = extract("p.pdf", make_pdf([lines]))
    assert doc.sections[0].text.split("\n\n") == [
        " ".join(lines[:3]),
        " ".join(lines[3:5]),
        lines[5],
        lines[6],
    ]


def test_pdf_title_falls_back_to_the_first_line_then_the_stem() -> None:
    assert extract("r.pdf", make_pdf([["Annual report", "Body text."]])).title == "Annual report"
    assert extract("r.pdf", make_pdf([["word " * 30]])).title == "r"


def test_pdf_with_an_empty_user_password_is_read() -> None:
    doc = extract("open.pdf", encrypt(make_pdf([["Readable text."]]), ""))
    assert doc.sections == [Section(None, "Readable text.", 1)]


def test_password_protected_pdf_is_corrupt_with_a_clear_message() -> None:
    with pytest.raises(CorruptDocument, match=r"locked\.pdf: .*password"):
        extract("locked.pdf", encrypt(make_pdf([["Secret."]]), "secret"))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, not a pdf",
        b"%PDF-1.4 garbage",
        make_pdf([["Cut short."]])[:60],
        make_pdf([["x"]]).replace(b"/Pages 2 0 R", b"/Pages 99 0 R"),
    ],
)
def test_unreadable_pdf_is_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptDocument, match=r"^bad\.pdf: "):
        extract("bad.pdf", data)


def test_pdf_without_text_is_empty() -> None:
    with pytest.raises(EmptyDocument, match="OCR"):
        extract("scan.pdf", make_pdf([[], []]))


# Errors


def test_error_classes_are_invalid_requests_with_their_status_and_code() -> None:
    assert (UnsupportedDocument.status, UnsupportedDocument.code) == (415, "unsupported_document")
    assert (CorruptDocument.status, CorruptDocument.code) == (422, "corrupt_document")
    assert (EmptyDocument.status, EmptyDocument.code) == (422, "empty_document")
    for error in (UnsupportedDocument, CorruptDocument, EmptyDocument):
        assert issubclass(error, InvalidRequest)
        assert error("m").envelope()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("filename", "named"), [("report.docx", "'.docx'"), ("README", "without a suffix")]
)
def test_unsupported_suffix_names_it_and_the_supported_ones(filename: str, named: str) -> None:
    with pytest.raises(UnsupportedDocument) as caught:
        extract(filename, b"PK\x03\x04")
    message = caught.value.message
    assert message.startswith(f"{filename}: ") and named in message
    assert all(suffix in message for suffix in SUPPORTED_SUFFIXES)


def test_suffixes_are_case_insensitive_and_paths_are_reduced_to_names() -> None:
    assert extract("C:\\docs\\Notes.Markdown", b"# N\n\nx").format == "markdown"
    assert {".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf"} == SUPPORTED_SUFFIXES


@pytest.mark.parametrize("filename", ["a.txt", "a.md", "a.html"])
@pytest.mark.parametrize("data", [b"\xff\xfe\xfa", b"caf\xe9 latin-1", b"ok\x00\x01binary"])
def test_text_that_is_not_utf8_is_corrupt(filename: str, data: bytes) -> None:
    with pytest.raises(CorruptDocument, match=r"^a\.(txt|md|html): "):
        extract(filename, data)


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("a.txt", b""),
        ("a.txt", b" \n\t\n "),
        ("a.md", b"  \n\n "),
        ("a.md", b"---\ntitle: only front matter\n---\n"),
        ("a.md", b"# Only a heading\n\n## And another\n"),
        ("a.html", b"<html><head><title>T</title></head><body><script>x()</script></body></html>"),
        ("a.html", b"<nav>Home</nav><footer>(c)</footer>"),
    ],
)
def test_files_without_text_are_empty(filename: str, data: bytes) -> None:
    with pytest.raises(EmptyDocument, match=r"^a\.(txt|md|html): "):
        extract(filename, data)


# Raw text


def test_raw_text_is_read_as_markdown() -> None:
    doc = extract_text("# Heading\n\nBody.\n\n## Sub\n\nMore.")
    assert doc == ExtractedDocument(
        "Heading",
        "markdown",
        [Section("Heading", "Body.", None), Section("Heading > Sub", "More.", None)],
    )


def test_raw_text_title_is_the_given_one_else_the_first_line() -> None:
    assert extract_text("# Heading\n\nBody.", title="  Given  title ").title == "Given title"
    assert extract_text("First line\nsecond line").title == "First line"
    assert extract_text("long " * 40).title == "text"


def test_raw_text_without_text_is_empty() -> None:
    with pytest.raises(EmptyDocument):
        extract_text(" \n\n ")
