"""Text out of uploaded files: plain text, Markdown, HTML and PDF, kept in sections (headings,
pages) so that chunks never straddle two of them."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath
from typing import ClassVar, Literal

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from switchboard.errors import InvalidRequest


class UnsupportedDocument(InvalidRequest):
    status = 415
    code = "unsupported_document"


class CorruptDocument(InvalidRequest):
    status = 422
    code = "corrupt_document"


class EmptyDocument(InvalidRequest):
    status = 422
    code = "empty_document"


@dataclass(frozen=True, slots=True)
class Section:
    heading: str | None  # the heading path, "Maintenance > Winter"; None before any heading
    text: str  # paragraphs separated by blank lines
    page: int | None  # 1-based, PDFs only


@dataclass(frozen=True, slots=True)
class ExtractedDocument:
    title: str
    format: Literal["text", "markdown", "html", "pdf"]
    sections: list[Section]


_FORMATS: dict[str, Literal["text", "markdown", "html", "pdf"]] = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
SUPPORTED_SUFFIXES = frozenset(_FORMATS)


def extract(filename: str, data: bytes) -> ExtractedDocument:
    """The text of a file by its suffix; `UnsupportedDocument`, `CorruptDocument` or
    `EmptyDocument` (4xx errors naming the file) when it has none to give."""
    path = PurePath(filename)
    kind = _FORMATS.get(path.suffix.lower())
    if kind is None:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UnsupportedDocument(
            f"{path.name}: {path.suffix or 'no suffix'} files are not supported ({supported})"
        )
    if kind == "pdf":
        document = _pdf(path, data)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise CorruptDocument(f"{path.name}: not valid UTF-8 text") from None
        if kind == "html":
            document = _html(text, path.stem)
        elif kind == "markdown":
            document = _markdown(text, path.stem)
        else:
            document = _plain(text, path.stem)
    if not any(s.text.strip() for s in document.sections):
        raise EmptyDocument(f"{path.name}: the document has no text")
    return document


def extract_text(text: str, title: str | None = None) -> ExtractedDocument:
    """Raw text sent through the API, read as Markdown."""
    document = _markdown(text, title or "text")
    if not any(s.text.strip() for s in document.sections):
        raise EmptyDocument("the document has no text")
    if title:
        return ExtractedDocument(title, document.format, document.sections)
    return document


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def _plain(text: str, stem: str) -> ExtractedDocument:
    paragraphs = _paragraphs(text)
    first = paragraphs[0] if paragraphs else ""
    title = first if 0 < len(first) < 100 else stem
    return ExtractedDocument(title, "text", [Section(None, "\n\n".join(paragraphs), None)])


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _markdown(text: str, stem: str) -> ExtractedDocument:
    lines = text.splitlines()
    if lines and lines[0].strip() == "---":  # front matter
        end = next((i for i, line in enumerate(lines[1:], 1) if line.strip() == "---"), None)
        if end is not None:
            lines = lines[end + 1 :]
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    title: str | None = None
    buffer: list[str] = []

    def flush() -> None:
        body = "\n\n".join(_paragraphs("\n".join(buffer)))
        if body:
            heading = " > ".join(h for _, h in path) or None
            sections.append(Section(heading, body, None))
        buffer.clear()

    for line in lines:
        match = _HEADING.match(line)
        if match and not line.startswith("    "):
            flush()
            level, heading = len(match.group(1)), match.group(2).strip()
            if level == 1 and title is None:
                title = heading
            path = [(lvl, h) for lvl, h in path if lvl < level] + [(level, heading)]
        elif line.strip().startswith("```"):
            continue  # keep fenced code's content, drop the fences
        else:
            buffer.append(line)
    flush()
    return ExtractedDocument(title or stem, "markdown", sections)


class _HtmlText(HTMLParser):
    _SKIP = frozenset(
        {"script", "style", "nav", "header", "footer", "noscript", "template", "svg", "head"}
    )
    _BLOCK = frozenset(
        {
            "p",
            "li",
            "td",
            "th",
            "pre",
            "blockquote",
            "dd",
            "dt",
            "div",
            "section",
            "article",
            "br",
            "tr",
            "figcaption",
        }
    )
    _HEADINGS: ClassVar[dict[str, int]] = {f"h{i}": i for i in range(1, 7)}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title = ""
        self.first_h1 = ""
        self.sections: list[Section] = []
        self._skipping = 0
        self._in_title = False
        self._path: list[tuple[int, str]] = []
        self._heading: tuple[int, list[str]] | None = None
        self._paragraph: list[str] = []
        self._paragraphs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._HEADINGS:
            self._end_paragraph()
            self._heading = (self._HEADINGS[tag], [])
        elif tag in self._BLOCK:
            self._end_paragraph()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._HEADINGS and self._heading is not None:
            level, words = self._heading
            self._heading = None
            text = " ".join(" ".join(words).split())
            if not text:
                return
            self._end_section()
            if level == 1 and not self.first_h1:
                self.first_h1 = text
            self._path = [(lvl, h) for lvl, h in self._path if lvl < level] + [(level, text)]
        elif tag in self._BLOCK:
            self._end_paragraph()

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skipping:
            return
        if self._heading is not None:
            self._heading[1].append(data)
        else:
            self._paragraph.append(data)

    def _end_paragraph(self) -> None:
        text = " ".join(" ".join(self._paragraph).split())
        if text:
            self._paragraphs.append(text)
        self._paragraph = []

    def _end_section(self) -> None:
        self._end_paragraph()
        if self._paragraphs:
            heading = " > ".join(h for _, h in self._path) or None
            self.sections.append(Section(heading, "\n\n".join(self._paragraphs), None))
        self._paragraphs = []

    def close(self) -> None:
        super().close()
        self._end_section()


def _html(text: str, stem: str) -> ExtractedDocument:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    title = " ".join(parser.title.split()) or parser.first_h1 or stem
    return ExtractedDocument(title, "html", parser.sections)


def _pdf(path: PurePath, data: bytes) -> ExtractedDocument:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorruptDocument(f"{path.name}: the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        metadata_title = (reader.metadata.title if reader.metadata else None) or ""
    except CorruptDocument:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise CorruptDocument(f"{path.name}: not a readable PDF ({exc})") from None
    sections = []
    for number, text in enumerate(pages, start=1):
        paragraphs = (
            _paragraphs(text)
            if re.search(r"\n\s*\n", text)
            else [" ".join(line.split()) for line in text.splitlines() if line.strip()]
        )
        if paragraphs:
            sections.append(Section(None, "\n\n".join(paragraphs), number))
    first_line = sections[0].text.split("\n\n", 1)[0] if sections else ""
    title = metadata_title.strip() or (first_line if 0 < len(first_line) < 100 else path.stem)
    return ExtractedDocument(title, "pdf", sections)
