"""An oracle for "this Markdown pings, references and links no one": markdown-it-py.

markdown-it-py is an independent CommonMark parser; with its GFM table and
strikethrough rules and linkify-it for bare URLs and e-mail addresses it sees a body
the way GitHub's renderer (cmark-gfm) does, closely enough to judge docgen's output.
GitHub then finds @mentions and #123 / GH-123 references in the *rendered text*
(outside code), so that is where they are looked for:
https://docs.github.com/en/get-started/writing-on-github/getting-started-with-writing-and-formatting-on-github/autolinked-references-and-urls

Nothing here imports ``bot``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from markdown_it import MarkdownIt
from markdown_it.token import Token

# What GitHub would act on in rendered text: a mention (or an e-mail address), an issue
# reference, an autolinked URL.
TRIGGERS = re.compile(r"(?i)@[a-z0-9]|#\d|\bgh-\d|[a-z][a-z0-9+.-]*://|\bwww\.")
LINKS = frozenset({"link_open", "image"})
HTML = frozenset({"html_inline", "html_block"})
CODE = frozenset({"code_inline", "fence", "code_block"})
# docgen's own hidden marker, the one HTML it writes on purpose.
MARKER = re.compile(r"<!-- docgen:v1 id=[A-Za-z0-9_-]* h=[A-Za-z0-9._:-]* -->\n?")


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"linkify": True}).enable(["table", "strikethrough", "linkify"])
    # GitHub autolinks URLs with a scheme, www. and e-mail addresses, not bare domains
    # (https://github.github.com/gfm/#autolinks-extension-); www. is found by TRIGGERS.
    md.linkify.set({"fuzzy_link": False})
    md.linkify.add("//", None)
    return md


_MD = _parser()


@dataclass
class Seen:
    """What a body renders to: its problems, code spans, fenced blocks and plain text."""

    problems: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    fences: list[tuple[str, str]] = field(default_factory=list)  # (info, content)
    text: list[str] = field(default_factory=list)
    types: set[str] = field(default_factory=set)  # every token type, e.g. "em_open"


def _walk(tokens: list[Token]) -> Iterator[Token]:
    for token in tokens:
        yield token
        if token.children:
            yield from _walk(token.children)


def inspect(body: str) -> Seen:
    """Parse ``body`` and list everything in it that would ping, reference or link."""
    seen = Seen()
    for token in _walk(_MD.parse(body)):
        seen.types.add(token.type)
        if token.type in LINKS:
            seen.problems.append(f"{token.type}: {token.attrs.get('href') or token.content!r}")
        elif token.type in HTML and not MARKER.fullmatch(token.content):
            seen.problems.append(f"{token.type}: {token.content!r}")
        elif token.type == "code_inline":
            seen.code.append(token.content)
        elif token.type in ("fence", "code_block"):
            seen.fences.append((token.info, token.content))
        elif token.type == "text":
            seen.text.append(token.content)
            found = TRIGGERS.search(token.content)
            if found:
                seen.problems.append(f"text {token.content!r} has {found.group()!r}")
    return seen


def assert_inert(body: str) -> Seen:
    """Fail when ``body`` renders a mention, reference, link, image or raw HTML."""
    seen = inspect(body)
    assert not seen.problems, "\n".join([*seen.problems, "--- in:", body])
    return seen
