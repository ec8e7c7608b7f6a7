"""Text from documents, as it goes into a prompt: quoted as data in delimited blocks, never spliced
in as instructions.

A block is `<tag attr="...">` ... `</tag>`. Inside it, every `<` that could begin a tag or a chat
template's control token (`<document`, `</document>`, `<system>`, `<|im_start|>`, `<!--`) is
written `&lt;`, so nothing a document says can close its block, open another, or pass for a
message boundary; the rest of the text is kept as it is (`a < b`, `->`, code). Attribute values
are HTML-escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping

_TAG_START = re.compile(r"<(?=[A-Za-z/!?|])")


def neutralise(text: str) -> str:
    """`text` with every tag-like `<` written `&lt;`: it cannot end or open a block."""
    return _TAG_START.sub("&lt;", text)


def block(tag: str, text: str, attributes: Mapping[str, object] | None = None) -> str:
    """`text` as a data block `<tag ...>\\ntext\\n</tag>`; attributes with value None are left
    out. `tag` and the attribute names are the caller's own (never document text)."""
    attrs = "".join(
        f' {name}="{html.escape(str(value), quote=True)}"'
        for name, value in (attributes or {}).items()
        if value is not None
    )
    return f"<{tag}{attrs}>\n{neutralise(text)}\n</{tag}>"


def blocks(tag: str, items: Iterable[str]) -> str:
    """Already-built blocks inside one enclosing `<tag>` ... `</tag>`."""
    inner = "\n".join(items)
    return f"<{tag}>\n{inner}\n</{tag}>" if inner else f"<{tag}>\n</{tag}>"
