"""Whether an existing docstring is stale: its documented parameters disagree with the
signature (a parameter added, removed or renamed)."""

from __future__ import annotations

import re

import docstring_parser

from bot.docstrings.models import Param

# Cheap pre-filter: docstring_parser costs ~0.1 ms a call, and most docstrings document
# no parameters at all.  Anything it could read as a parameter entry matches this.
_PARAM_HINT = re.compile(
    r"^[ \t]*(?:args|arguments|parameters|params|other[ \t]+(?:parameters|params|arguments|args)"
    r"|keyword[ \t]+(?:args|arguments))[ \t]*:?[ \t]*$"
    r"|[:@](?:param|parameter|arg|argument|key|keyword)\b",
    re.I | re.M,
)
# docstring_parser's DocstringParam.args[0] for parameter entries; "attribute" (Google
# "Attributes:", epydoc @ivar) documents fields, not the signature.
_PARAM_KEYS = frozenset({"param", "parameter", "arg", "argument", "key", "keyword", "other_param"})


def documented_params(docstring: str) -> list[str] | None:
    """Parameter names the docstring documents, in order; None when it cannot be read."""
    if not _PARAM_HINT.search(docstring):
        return []
    try:
        parsed = docstring_parser.parse(docstring)
    except Exception:  # a third-party parser on arbitrary text: not judging is the answer
        return None
    names: dict[str, None] = {}
    for meta in parsed.params:
        if not meta.args or meta.args[0] not in _PARAM_KEYS:
            continue
        for part in (meta.arg_name or "").split(","):  # NumPy: "x1, x2 : int"
            name = part.strip().lstrip("\\*").strip()  # "*args", reST "\*args"
            if name:
                names[name] = None
    return list(names)


def _quote(names: list[str]) -> str:
    return ", ".join(f"`{name}`" for name in names) if names else "none"


def stale_reason(documented: list[str], params: tuple[Param, ...]) -> str:
    """Why documented parameter names disagree with the signature ("" when they agree).

    Lenient where docstrings legitimately differ from the signature: leaving
    ``*args``/``**kwargs`` undocumented is fine, and with ``**kwargs`` in the signature
    extra documented names may be keyword arguments it accepts.
    """
    actual = [p.name for p in params]
    missing = [
        p.display_name
        for p in params
        if p.name not in documented and p.kind not in ("vararg", "varkw")
    ]
    has_varkw = any(p.kind == "varkw" for p in params)
    extra = [] if has_varkw else [name for name in documented if name not in actual]
    if not missing and not extra:
        return ""
    details = []
    if missing:
        details.append(f"missing {_quote(missing)}")
    if extra:
        details.append(f"not in the signature: {_quote(extra)}")
    signature = _quote([p.display_name for p in params]) if params else "no parameters"
    return (
        f"documents {_quote(documented)} but the signature has {signature} ({'; '.join(details)})"
    )
