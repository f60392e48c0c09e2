"""The repository's voice: the mood of its summary lines, and short examples of its
docstrings for the model to match.

Pure functions over strings (issue 12, "Write in the repository's voice"):

* :func:`detect_mood` measures whether summaries start "Return …" (imperative, PEP 257's
  advice) or "Returns …" (descriptive), from the file's docstrings, else the
  repository's sample; :func:`in_mood` puts a summary's first verb in that mood.
* :func:`examples_for` picks two short docstrings of the same kind of
  definition (function, method, property, class) from the same file, else from the
  repository's sample, to show the model how this repository writes.

Only verbs we know are judged or changed: a summary starting with a noun ("Utilities
for …", "Settings of …") votes for neither mood and is never rewritten.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
from collections import Counter
from collections.abc import Iterable, Sequence

from bot.docstrings.models import DocParts, Target
from bot.docstrings.parsing import parse_quietly

IMPERATIVE = "imperative"
DESCRIPTIVE = "descriptive"
MOODS = (IMPERATIVE, DESCRIPTIVE)

# Verbs that open docstring summaries, in the base form.  A word is judged only when it
# (or its -s/-es/-ies form) is here: "Process" and "Processes" are verbs, "Settings" no.
_VERBS = frozenset(
    """
    accept access add adjust aggregate allocate allow append apply assert assign attach
    build calculate call cancel cast change check clean clear clone close collect combine
    compare compile compute configure connect construct consume contain convert copy count
    create decode decorate define delete deliver describe deserialize detect determine
    disable discard dispatch display do download drop dump emit enable encode ensure enter
    escape evaluate execute exit expand export extend extract fetch fill filter find
    finish fix flatten flush format generate get group guess handle hash hold ignore
    implement import include increment initialize initialise insert inspect install
    invoke iterate join keep list load lock log look make map mark match measure merge
    modify move normalize normalise notify open optimize order output pack parse pass
    patch perform pick place plot pop populate post prepare print process produce
    provide publish pull push put query raise read receive record reduce refresh register
    reject release reload remove rename render reorder repeat replace report represent
    request require reset resize resolve restore retrieve return reverse run save scale
    scan schedule search select send serialize set setup show shut skip sort split start
    stop store strip submit subscribe swap switch sync take tell test toggle track
    transform translate trigger trim truncate try turn unpack unregister unwrap update
    upload use validate verify visit wait walk warn wrap write yield
    """.split()
)
_IRREGULAR = {"has": "have", "does": "do", "goes": "go"}
_THIRD_PERSON = {base: form for form, base in _IRREGULAR.items()}

MOOD_MIN_DOCSTRINGS = 5  # as many as style.PLAIN_MIN_DOCSTRINGS
MAX_EXAMPLES = 2
MAX_EXAMPLE_LINES = 6
MAX_EXAMPLE_CHARS = 300


def _first_word(text: str) -> str:
    words = text.strip().split(None, 1)
    return words[0] if words else ""


def _bases(word: str) -> Iterable[str]:
    """Base forms a third-person word could come from: applies → apply, fixes → fix."""
    if word in _IRREGULAR:
        yield _IRREGULAR[word]
    if word.endswith("ies"):
        yield word[:-3] + "y"
    if word.endswith("es"):
        yield word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        yield word[:-1]


def verb_mood(word: str) -> tuple[str, str] | None:
    """``(mood, base verb)`` of a summary's first word, or None when it is no verb we know."""
    lower = word.lower()
    if lower in _VERBS:
        return IMPERATIVE, lower
    for base in _bases(lower):
        if base in _VERBS:
            return DESCRIPTIVE, base
    return None


def mood_of(summary: str) -> str | None:
    """The mood a summary line is written in (None: its first word is no known verb)."""
    found = verb_mood(_first_word(summary))
    return found[0] if found else None


def _evidence(docstrings: Iterable[str]) -> str | None:
    votes: Counter[str] = Counter()
    for doc in docstrings:
        mood = mood_of(doc or "")
        if mood is not None:
            votes[mood] += 1
    if not votes:
        return None
    return DESCRIPTIVE if votes[DESCRIPTIVE] > votes[IMPERATIVE] else IMPERATIVE


def detect_mood(
    file_docstrings: Sequence[str], repo_docstrings: Iterable[str] = (), default: str = IMPERATIVE
) -> str:
    """The mood to write summaries in: the file's majority, else the repository's,
    else ``default`` (imperative: PEP 257).  A tie goes to imperative.

    A file with :data:`MOOD_MIN_DOCSTRINGS` docstrings of which none opens with a verb
    speaks for itself ("First.", "The user."): the repository's sample is not read for
    it (reading it is the slowest part of an offline review, issue 13).
    """
    found = _evidence(file_docstrings)
    if found is not None:
        return found
    if sum(1 for d in file_docstrings if d and d.strip()) >= MOOD_MIN_DOCSTRINGS:
        return default
    return _evidence(repo_docstrings) or default


def _third_person(base: str) -> str:
    if base in _THIRD_PERSON:
        return _THIRD_PERSON[base]
    if base.endswith(("s", "sh", "ch", "x", "z", "o")):
        return base + "es"
    if len(base) > 1 and base.endswith("y") and base[-2] not in "aeiou":
        return base[:-1] + "ies"
    return base + "s"


def in_mood(summary: str, mood: str) -> str:
    """``summary`` with its first verb in ``mood``; unchanged when it is already, or when
    its first word is no verb we know.  The first letter's case is kept."""
    word = _first_word(summary)
    found = verb_mood(word)
    if found is None or found[0] == mood:
        return summary
    base = found[1]
    new = base if mood == IMPERATIVE else _third_person(base)
    if word[:1].isupper():
        new = new[:1].upper() + new[1:]
    start = summary.index(word)
    return summary[:start] + new + summary[start + len(word) :]


# ----------------------------------------------------------------------- examples


def target_kind(target: Target) -> str:
    """The kind examples are chosen by: class, property, method or function."""
    if target.kind == "class":
        return "class"
    if target.is_property:
        return "property"
    return target.kind


def _node_kind(node: ast.AST, in_class: bool) -> str:
    if isinstance(node, ast.ClassDef):
        return "class"
    for deco in getattr(node, "decorator_list", ()):
        name = ast.unparse(deco).rsplit(".", 1)[-1]
        if name in ("property", "cached_property", "setter", "getter", "deleter"):
            return "property"
    return "method" if in_class else "function"


def is_short(docstring: str) -> bool:
    """Short enough to be worth its tokens as an example."""
    text = docstring.strip()
    return bool(text) and len(text) <= MAX_EXAMPLE_CHARS and text.count("\n") < MAX_EXAMPLE_LINES


@functools.lru_cache(maxsize=16)
def file_examples(module_text: str) -> tuple[tuple[str, int, str], ...]:
    """``(kind, line, docstring)`` of the module's short docstrings, in file order
    (cleaned as ``inspect.cleandoc`` does).  Empty when the module does not parse."""
    try:
        tree = parse_quietly(module_text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ()
    out: list[tuple[str, int, str]] = []

    def walk(body: Sequence[ast.stmt], in_class: bool) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node, clean=False)
                if doc is not None and is_short(doc):
                    out.append((_node_kind(node, in_class), node.lineno, inspect.cleandoc(doc)))
                walk(node.body, isinstance(node, ast.ClassDef))

    walk(tree.body, False)
    return tuple(out)


def examples_for(
    target: Target, module_text: str, repo_docstrings: Sequence[str] = (), limit: int = MAX_EXAMPLES
) -> tuple[str, ...]:
    """Up to ``limit`` short docstrings to show the model for ``target``.

    From the same file: those of the same kind first (nearest the target first), then
    others; from the repository's sample only when the file has none.  The target's own
    (stale) docstring is never one of them.
    """
    kind = target_kind(target)
    found = [(k, line, doc) for k, line, doc in file_examples(module_text)]
    found = [e for e in found if e[1] != target.def_line]
    found.sort(key=lambda e: (e[0] != kind, abs(e[1] - target.def_line)))
    picked = [doc for _, _, doc in found]
    if not picked:
        picked = [inspect.cleandoc(d) for d in repo_docstrings if d and is_short(d)]
    out: list[str] = []
    for doc in picked:
        if doc not in out:
            out.append(doc)
        if len(out) == limit:
            break
    return tuple(out)


# -------------------------------------------------------------------- summaries


def authored(summary: str, target: Target) -> bool:
    """True when ``summary`` is the maintainer's own, kept from the target's existing
    docstring (an update): their words stay as they are, whatever the mood."""
    if not target.docstring:
        return False
    return " ".join(summary.split()) in " ".join(target.docstring.split())


def parts_in_mood(parts: DocParts, target: Target, mood: str) -> DocParts:
    """``parts`` with a new summary's first verb in the repository's ``mood``.

    A model told the mood may still slip ("Return" in a "Returns" repository); the fix
    is one word, so it is made here rather than paid for with a repair round.
    """
    if authored(parts.summary, target):
        return parts
    summary = in_mood(parts.summary, mood)
    return parts if summary == parts.summary else dataclasses.replace(parts, summary=summary)
