"""Writes evals/corpus from the Python Language Reference topics that ship with CPython
(`pydoc_data.topics`, PSF License 2.0), as Markdown, plain text and HTML files.

The committed corpus was built with CPython 3.11.7; other versions word some topics differently,
so this script documents where the corpus comes from rather than being run by the tests.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path
from pydoc_data.topics import topics

OUT = Path(__file__).resolve().parent.parent / "evals" / "corpus"
_UNDERLINE = {"*": "#", "=": "##", "-": "###", "~": "####"}


def _markdown(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        below = lines[i + 1] if i + 1 < len(lines) else ""
        mark = below[:1]
        underline = below.strip()
        if (
            line.strip()
            and mark in _UNDERLINE
            and underline == mark * len(underline)
            and len(underline) >= len(line.strip())
        ):
            out.append(f"{_UNDERLINE[mark]} {line.strip()}")
            i += 2
            continue
        out.append(line)
        i += 1
    return "\n".join(out).strip() + "\n"


def _html(markdown: str, title: str) -> str:
    body = []
    for block in re.split(r"\n\s*\n", markdown):
        block = block.rstrip()
        if not block.strip():
            continue
        heading = re.match(r"^(#{1,6}) (.*)$", block)
        if heading:
            level = len(heading.group(1))
            body.append(f"<h{level}>{html.escape(heading.group(2))}</h{level}>")
        elif block.startswith("   "):
            body.append(f"<pre>{html.escape(block)}</pre>")
        else:
            body.append(f"<p>{html.escape(' '.join(block.split()))}</p>")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>"
        "<style>body { font-family: sans-serif; }</style>"
        "<script>window.analytics = { page: 'reference' };</script></head>\n<body>\n"
        '<nav><a href="/">Home</a> | <a href="/reference">Reference</a></nav>\n'
        + "\n".join(body)
        + "\n<footer>Python Software Foundation</footer>\n</body></html>\n"
    )


def main() -> None:
    if sys.version_info[:2] != (3, 11):
        print("note: the committed corpus was built with CPython 3.11", file=sys.stderr)
    OUT.mkdir(parents=True, exist_ok=True)
    for number, (name, text) in enumerate(sorted(topics.items())):
        markdown = _markdown(text)
        title = markdown.splitlines()[0].lstrip("# ").strip()
        if number % 8 == 3:
            (OUT / f"{name}.html").write_text(_html(markdown, title))
        elif number % 8 == 6:
            (OUT / f"{name}.txt").write_text(text.strip() + "\n")
        else:
            (OUT / f"{name}.md").write_text(markdown)
    print(f"wrote {len(topics)} documents to {OUT}")


if __name__ == "__main__":
    main()
