"""Text out of uploaded files (plain text, Markdown, HTML, PDF), kept in sections (heading paths,
pages) so that chunking never straddles two of them.

Everything here is pure: bytes in, an `ExtractedDocument` or a 4xx `InvalidRequest` out. The text
of a document is kept as written up to white space (no inline markup is rewritten), so a phrase
quoted from the source can still be found in the chunks made from it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Final, Literal

from switchboard.errors import InvalidRequest

Format = Literal["text", "markdown", "html", "pdf"]


class UnsupportedDocument(InvalidRequest):
    """The file's suffix names a format this service does not read."""

    status = 415
    code = "unsupported_document"


class CorruptDocument(InvalidRequest):
    """The file claims a supported format but cannot be read as one (or is password-protected)."""

    status = 422
    code = "corrupt_document"


class EmptyDocument(InvalidRequest):
    """The file was read but holds no text."""

    status = 422
    code = "empty_document"


@dataclass(frozen=True, slots=True)
class Section:
    heading: str | None  # the heading path, "Maintenance > Winter schedule"; None before any
    text: str  # paragraphs separated by "\n\n"; never empty
    page: int | None  # 1-based page for PDFs, else None


@dataclass(frozen=True, slots=True)
class ExtractedDocument:
    title: str
    format: Format
    sections: list[Section]


_FORMATS: Final[dict[str, Format]] = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
SUPPORTED_SUFFIXES: Final = frozenset(_FORMATS)

_TITLE_LIMIT = 100  # a first line this long is a sentence, not a title
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
# A line of one repeated rule character: a reST-style underline or a thematic break.
_RULE = re.compile(r"^[ \t]*([=\-*_~#+^])\1{2,}[ \t]*$")


def extract(filename: str, data: bytes) -> ExtractedDocument:
    """The text of a file, read by its (case-insensitive) suffix.

    Raises `UnsupportedDocument` for a suffix outside `SUPPORTED_SUFFIXES`, `CorruptDocument` for
    text that is not UTF-8 or a PDF that cannot be opened, and `EmptyDocument` when there is no
    text; every message names the file. The sections returned are never empty.
    """
    # Browsers send a bare name, but a Windows path must not hide the suffix either.
    path = PurePosixPath(filename.replace("\\", "/"))
    name = path.name or filename
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        what = f"{path.suffix!r} files" if path.suffix else "files without a suffix"
        raise UnsupportedDocument(f"{name}: {what} are not supported (supported: {supported})")
    if kind == "pdf":
        document = _pdf(name, path.stem, data)
    else:
        text = _decode(name, data)
        if kind == "html":
            document = _html(text, path.stem)
        elif kind == "markdown":
            document = _markdown(text, path.stem)
        else:
            document = _plain(text, path.stem)
    if not document.sections:
        hint = " (a scanned PDF needs OCR first)" if kind == "pdf" else ""
        raise EmptyDocument(f"{name}: the document has no text{hint}")
    return document


def extract_text(text: str, title: str | None = None) -> ExtractedDocument:
    """Raw text sent through the API, read as Markdown. The title is `title` when given, else the
    first H1, else the first line when it is short, else "text". Raises `EmptyDocument` when the
    text is only white space."""
    document = _markdown(_normalize_newlines(text), None)
    if not document.sections:
        raise EmptyDocument("the text is empty")
    if title and title.strip():
        return ExtractedDocument(" ".join(title.split()), "markdown", document.sections)
    return document


def _decode(name: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorruptDocument(
            f"{name}: not valid UTF-8 text (bad byte at offset {exc.start})"
        ) from None
    if "\x00" in text:  # UTF-8 that decodes but holds NULs is a binary file with a text suffix
        raise CorruptDocument(f"{name}: binary data, not text")
    return _normalize_newlines(text)


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _squash(text: str) -> str:
    return " ".join(text.split())


def _first_line_title(lines: Iterable[str]) -> str | None:
    for line in lines:
        if line.strip() and not _RULE.match(line):
            candidate = _squash(line)
            return candidate if len(candidate) < _TITLE_LIMIT else None
    return None


def _prose_paragraphs(text: str) -> list[str]:
    """Blank-line separated paragraphs, each on one line; rule lines only separate."""
    paragraphs = []
    for block in _BLANK_LINE.split(text):
        lines: list[str] = []
        for line in block.split("\n"):
            if _RULE.match(line):
                if lines:
                    paragraphs.append(_squash(" ".join(lines)))
                lines = []
            elif line.strip():
                lines.append(line)
        if lines:
            paragraphs.append(_squash(" ".join(lines)))
    return paragraphs


def _plain(text: str, stem: str) -> ExtractedDocument:
    paragraphs = _prose_paragraphs(text)
    sections = [Section(None, "\n\n".join(paragraphs), None)] if paragraphs else []
    title = _first_line_title(text.split("\n")) or stem
    return ExtractedDocument(title, "text", sections)


# ATX headings must start in column 0: pydoc-style text indents code by three spaces, and a
# Python comment there ("   # note") must not become a heading as CommonMark would have it.
_ATX = re.compile(r"^(#{1,6})(?=[ \t]|$)(.*)$")
_ATX_CLOSING = re.compile(r"(?:^|[ \t]+)#+[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
# Lines that start a new line inside a block instead of continuing the one before.
_LINE_ITEM = re.compile(r"^[ \t]*(?:[-*+][ \t]|\d{1,9}[.)][ \t]|\|)")


class _MarkdownSections:
    """Collects paragraphs under the current heading path."""

    def __init__(self) -> None:
        self.sections: list[Section] = []
        self.first_h1: str | None = None
        self._path: list[tuple[int, str]] = []
        self._paragraphs: list[str] = []

    def paragraph(self, text: str) -> None:
        if text.strip():
            self._paragraphs.append(text)

    def heading(self, level: int, text: str) -> None:
        text = _squash(text)
        if not text:
            return
        self.end_section()
        if level == 1 and self.first_h1 is None:
            self.first_h1 = text
        self._path = [(lvl, h) for lvl, h in self._path if lvl < level] + [(level, text)]

    def end_section(self) -> None:
        if self._paragraphs:
            heading = " > ".join(h for _, h in self._path) or None
            self.sections.append(Section(heading, "\n\n".join(self._paragraphs), None))
        self._paragraphs = []


def _markdown_block(lines: list[str]) -> str:
    """One paragraph from a block of consecutive non-blank lines.

    An indented block is code and keeps its lines (dedented); elsewhere list items and table
    rows keep their own lines and wrapped prose is joined into one line.
    """
    if all(line[:1] in (" ", "\t") for line in lines):
        indent = min(len(line) - len(line.lstrip()) for line in lines)
        return "\n".join(line[indent:].rstrip() for line in lines)
    out: list[str] = []
    for line in lines:
        if out and not _LINE_ITEM.match(line):
            out[-1] = f"{out[-1]} {_squash(line)}"
        else:
            out.append(_squash(line))
    return "\n".join(out)


def _strip_front_matter(lines: list[str]) -> list[str]:
    if lines and lines[0].strip() == "---":
        for end in range(1, len(lines)):
            if lines[end].strip() in ("---", "..."):
                return lines[end + 1 :]
    return lines


def _markdown(text: str, stem: str | None) -> ExtractedDocument:
    lines = _strip_front_matter(text.split("\n"))
    out = _MarkdownSections()
    block: list[str] = []
    fence: str | None = None  # the opening fence while inside fenced code

    def end_block() -> None:
        if block:
            out.paragraph(_markdown_block(block))
        block.clear()

    for line in lines:
        if fence is not None:
            closing = _FENCE.match(line)
            if (
                closing
                and closing.group(1)[0] == fence[0]
                and len(closing.group(1)) >= len(fence)
                and not closing.group(2).strip()
            ):
                # The fences go, their content stays: one paragraph, since a blank line in code
                # would otherwise split it into pieces that chunking may separate.
                out.paragraph("\n".join(block))
                block.clear()
                fence = None
                continue
            if line.strip():
                block.append(line.rstrip())
            continue
        opening = _FENCE.match(line)
        if opening and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
            end_block()
            fence = opening.group(1)
            continue
        atx = _ATX.match(line)
        if atx:
            end_block()
            out.heading(len(atx.group(1)), _ATX_CLOSING.sub("", atx.group(2)))
            continue
        setext = _SETEXT.match(line)
        if (
            setext
            and block
            and not _LINE_ITEM.match(block[-1])
            and block[-1][:1] not in (" ", "\t")
        ):
            out.heading(1 if setext.group(1)[0] == "=" else 2, " ".join(block))
            block.clear()
            continue
        if not line.strip() or _RULE.match(line):
            end_block()
            continue
        block.append(line)
    if fence is not None:  # an unclosed fence runs to the end of the document
        out.paragraph("\n".join(block))
        block.clear()
    end_block()
    out.end_section()
    title = out.first_h1 or (stem if stem is not None else _first_line_title(lines) or "text")
    return ExtractedDocument(title, "markdown", out.sections)


class _HtmlText(HTMLParser):
    """Headings and block-level text of an HTML page, without its boilerplate."""

    _SKIP: Final = frozenset(
        {"script", "style", "nav", "header", "footer", "noscript", "template", "svg", "head"}
    )
    # A <header> or <footer> inside an article is the article's own (its H1, its byline), not
    # the site's banner, so it is kept.
    _KEPT_INSIDE: Final = frozenset({"article", "main"})
    _BLOCK: Final = frozenset(
        {
            "address", "article", "aside", "blockquote", "body", "caption", "dd", "details",
            "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form",
            "header", "hr", "li", "main", "ol", "p", "pre", "section", "summary", "table", "tbody",
            "td", "tfoot", "th", "thead", "tr", "ul",
        }
    )  # fmt: skip
    _HEADINGS: Final = {f"h{i}": i for i in range(1, 7)}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self.first_h1: str | None = None
        self.sections: list[Section] = []
        self._skip: list[str] = []  # open skipped elements, innermost last
        self._open_containers = 0  # open <article>/<main> elements
        self._title: list[str] | None = None
        self._heading: tuple[int, list[str]] | None = None
        self._pre = 0
        self._text: list[str] = []
        self._text_is_pre = False
        self._path: list[tuple[int, str]] = []
        self._paragraphs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and self.title is None and "svg" not in self._skip:
            self._title = []
        kept = tag in ("header", "footer") and self._open_containers > 0 and not self._skip
        if tag in self._SKIP and not kept:
            self._skip.append(tag)
            return
        if self._skip:
            return
        if tag in self._KEPT_INSIDE:
            self._open_containers += 1
        if tag in self._HEADINGS:
            self._end_paragraph()
            self._heading = (self._HEADINGS[tag], [])
        elif tag == "br":
            self._data("\n" if self._pre else " ")
        elif tag in self._BLOCK:
            self._end_paragraph()
            if tag == "pre":
                self._pre += 1
                self._text_is_pre = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title is not None:
            self.title = _squash("".join(self._title))
            self._title = None
        if tag in self._skip:
            del self._skip[len(self._skip) - 1 - self._skip[::-1].index(tag) :]
            return
        if self._skip:
            return
        if tag in self._KEPT_INSIDE:
            self._open_containers = max(0, self._open_containers - 1)
        if tag in self._HEADINGS and self._heading is not None:
            self._end_heading()
        elif tag in self._BLOCK:
            self._end_paragraph()
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
                self._text_is_pre = self._pre > 0

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
            return
        if not self._skip:
            self._data(data)

    def _data(self, data: str) -> None:
        if self._heading is not None:
            self._heading[1].append(data)
        else:
            self._text.append(data)

    def _end_heading(self) -> None:
        assert self._heading is not None
        level, pieces = self._heading
        self._heading = None
        text = _squash("".join(pieces))
        if not text:
            return
        self._end_section()
        if level == 1 and self.first_h1 is None:
            self.first_h1 = text
        self._path = [(lvl, h) for lvl, h in self._path if lvl < level] + [(level, text)]

    def _end_paragraph(self) -> None:
        raw = "".join(self._text)
        if self._text_is_pre:
            lines = [line.rstrip() for line in raw.split("\n") if line.strip()]
            indent = min((len(line) - len(line.lstrip()) for line in lines), default=0)
            text = "\n".join(line[indent:] for line in lines)
        else:
            text = _squash(raw)
        if text:
            self._paragraphs.append(text)
        self._text = []
        self._text_is_pre = self._pre > 0

    def _end_section(self) -> None:
        self._end_paragraph()
        if self._paragraphs:
            heading = " > ".join(h for _, h in self._path) or None
            self.sections.append(Section(heading, "\n\n".join(self._paragraphs), None))
        self._paragraphs = []

    def close(self) -> None:
        super().close()
        if self._heading is not None:  # an unclosed heading at the very end
            self._end_heading()
        self._end_section()


def _html(text: str, stem: str) -> ExtractedDocument:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return ExtractedDocument(parser.title or parser.first_h1 or stem, "html", parser.sections)


# Bullets (•, ▪, ◦, ‣, ●, ○, ■, -, *, en dash) and numbered items.
_PDF_ITEM = re.compile(r"^(?:[\u2022\u25aa\u25e6\u2023\u25cf\u25cb\u25a0\-*\u2013]|\d{1,3}[.)])\s")
_PDF_SENTENCE_END = re.compile(r"[.!?:][\"'\u201d\u2019)\]]?$")


def _pdf_paragraphs(text: str) -> list[str]:
    """Paragraphs of one page's text.

    pypdf rarely leaves blank lines between paragraphs; without them a paragraph ends at a line
    that closes a sentence and falls short of the page's full line width, or before a list item.
    """
    if _BLANK_LINE.search(text):
        return _prose_paragraphs(text)
    lines = [_squash(line) for line in text.split("\n") if line.strip()]
    width = max((len(line) for line in lines), default=0)
    paragraphs: list[str] = []
    current: list[str] = []
    for line in lines:
        if current and _PDF_ITEM.match(line):
            paragraphs.append(" ".join(current))
            current = []
        current.append(line)
        if _PDF_SENTENCE_END.search(line) and len(line) < 0.8 * width:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def _pdf(name: str, stem: str, data: bytes) -> ExtractedDocument:
    from pypdf import PdfReader  # 50 ms to import: only when a PDF arrives, not at start-up

    try:
        reader = PdfReader(io.BytesIO(data))
        # pypdf has already tried the empty user password; this asks whether it worked.
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorruptDocument(
                f"{name}: the PDF is password-protected; upload a copy without a password"
            )
        pages = [page.extract_text() or "" for page in reader.pages]
        metadata = reader.metadata
        metadata_title = (metadata.title if metadata is not None else None) or ""
    except CorruptDocument:
        raise
    # pypdf reports malformed input with its own errors but also with bare ValueError,
    # KeyError, AttributeError, RecursionError and others; all of them mean the upload is not a
    # PDF we can read, which is the client's 422, not our 500.
    except Exception as exc:
        detail = str(exc) or type(exc).__name__
        raise CorruptDocument(f"{name}: not a readable PDF ({detail})") from None
    sections = []
    for number, page_text in enumerate(pages, start=1):
        paragraphs = _pdf_paragraphs(page_text)
        if paragraphs:
            sections.append(Section(None, "\n\n".join(paragraphs), number))
    first_page = next((page_text for page_text in pages if page_text.strip()), "")
    title = _squash(str(metadata_title)) or _first_line_title(first_page.split("\n")) or stem
    return ExtractedDocument(title, "pdf", sections)
