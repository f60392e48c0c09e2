"""Tests for bot.docstrings.style: detecting a repo's docstring convention and writing in it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import docstring_parser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.docstrings import style as style_mod
from bot.docstrings.models import DocParts, Param, Style, Target
from bot.docstrings.style import classify, compose, detect_for_file, detect_style, text_width
from tests import factories

FIXTURES = Path(__file__).parent / "fixtures" / "style"
PARSER_STYLE = {
    Style.GOOGLE: docstring_parser.DocstringStyle.GOOGLE,
    Style.NUMPY: docstring_parser.DocstringStyle.NUMPYDOC,
    Style.SPHINX: docstring_parser.DocstringStyle.REST,
}


def assert_golden(name: str, text: str) -> None:
    """Compare with tests/fixtures/style/<name>; DOCGEN_UPDATE_GOLDEN=1 rewrites it."""
    path = FIXTURES / name
    if os.environ.get("DOCGEN_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with DOCGEN_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def make_target(
    params: tuple[Param, ...] = (),
    *,
    kind: str = "function",
    returns: str | None = None,
    yields: bool = False,
    body_indent: str = "    ",
) -> Target:
    return factories.make_target(
        path="pkg/mod.py",
        kind=kind,
        indent=body_indent[:-4] if body_indent.endswith("    ") else "",
        body_indent=body_indent,
        params=params,
        returns=returns,
        yields=yields,
    )


# ---------------------------------------------------------------------- classify

REAL = json.loads((FIXTURES / "real_docstrings.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", REAL, ids=[case["source"].split(" ")[0] for case in REAL])
def test_classify_real_docstrings(case: dict) -> None:
    expected = Style(case["style"]) if case["style"] else None
    assert classify(case["docstring"]) == expected


@pytest.mark.parametrize(
    ("docstring", "expected"),
    [
        pytest.param("Return the answer.", None, id="one-liner"),
        pytest.param("", None, id="empty"),
        pytest.param("Do it.\n\nArgs:\n    x: the x.", Style.GOOGLE, id="google-args"),
        pytest.param(
            "Do it.\n\nArguments:\n    x (int): the x.", Style.GOOGLE, id="google-arguments"
        ),
        pytest.param("Do it.\n\nYields:\n    int: numbers.", Style.GOOGLE, id="google-yields"),
        pytest.param("Do it.\n\nExample:\n    >>> f()\n", Style.GOOGLE, id="google-example"),
        pytest.param("Do it.\n\nAttributes:\n    x: an x.", Style.GOOGLE, id="google-attributes"),
        pytest.param("Here is what it returns:\nnothing much.", None, id="colon-in-prose"),
        pytest.param(
            "Do it.\n\nReturns:\nthe value, unindented.", None, id="google-header-no-entries"
        ),
        pytest.param(
            "Do it.\n\nReturns\n-------\nint\n    The value.", Style.NUMPY, id="numpy-returns"
        ),
        pytest.param(
            "Do it.\n\nParameters\n----------\nx : int\n    X.", Style.NUMPY, id="numpy-params"
        ),
        pytest.param("Do it.\n\nParameters\nx : int\n    X.", None, id="numpy-no-underline"),
        pytest.param("Do it.\n\n:param x: the x.\n:type x: int", Style.SPHINX, id="sphinx-param"),
        pytest.param("Do it.\n\n:returns: a value\n:rtype: int", Style.SPHINX, id="sphinx-returns"),
        pytest.param("Do it.\n\n:raises ValueError: when bad.", Style.SPHINX, id="sphinx-raises"),
        pytest.param("Return a :class:`Template`, see :func:`load`.", None, id="sphinx-roles-only"),
        pytest.param(
            "Do it.\n\n    Args:\n        x: indented docstring, not cleaned.\n    ",
            Style.GOOGLE,
            id="uncleaned-indent",
        ),
        pytest.param(
            "Do it.\n\nArgs:\n    x: X.\n\n:param y: Y.\n:param z: Z.",
            Style.SPHINX,
            id="mixed-majority",
        ),
        pytest.param("Do it.\n\nArgs:\n    x: X.\n\n:param y: Y.", Style.GOOGLE, id="mixed-tie"),
    ],
)
def test_classify(docstring: str, expected: Style | None) -> None:
    assert classify(docstring) == expected


# ------------------------------------------------------------------ detect_style

GOOGLE_DOC = "Do it.\n\nArgs:\n    x: X."
NUMPY_DOC = "Do it.\n\nParameters\n----------\nx : int\n    X."
SPHINX_DOC = "Do it.\n\n:param x: X."
PROSE = "Do it, carefully."


@pytest.mark.parametrize(
    ("docstrings", "default", "expected"),
    [
        pytest.param([], Style.GOOGLE, Style.GOOGLE, id="nothing-default"),
        pytest.param([], Style.NUMPY, Style.NUMPY, id="nothing-other-default"),
        pytest.param([PROSE] * 4, Style.SPHINX, Style.SPHINX, id="few-prose-default"),
        pytest.param([PROSE] * 5, Style.SPHINX, Style.PLAIN, id="many-prose-plain"),
        pytest.param(["", "  "] * 5, Style.NUMPY, Style.NUMPY, id="blank-not-counted"),
        pytest.param([PROSE] * 20 + [NUMPY_DOC], Style.GOOGLE, Style.NUMPY, id="one-section-wins"),
        pytest.param(
            [SPHINX_DOC, SPHINX_DOC, GOOGLE_DOC], Style.GOOGLE, Style.SPHINX, id="majority"
        ),
        pytest.param(
            [SPHINX_DOC, NUMPY_DOC], Style.GOOGLE, Style.NUMPY, id="tie-numpy-over-sphinx"
        ),
        pytest.param(
            [SPHINX_DOC, NUMPY_DOC, GOOGLE_DOC], Style.SPHINX, Style.GOOGLE, id="tie-google-first"
        ),
    ],
)
def test_detect_style(docstrings: list[str], default: Style, expected: Style) -> None:
    assert detect_style(docstrings, default) == expected
    assert detect_style(iter(docstrings), default) == expected  # any iterable, read once


def test_detect_style_on_real_docstrings() -> None:
    numpy_docs = [case["docstring"] for case in REAL if case["style"] == "numpy"]
    google_docs = [case["docstring"] for case in REAL if case["style"] == "google"]
    prose = [case["docstring"] for case in REAL if case["style"] is None]
    assert detect_style(numpy_docs + google_docs[:2] + prose) == Style.NUMPY
    assert detect_style(prose) == Style.PLAIN


@pytest.mark.parametrize(
    ("file_docs", "repo_docs", "forced", "expected"),
    [
        pytest.param([NUMPY_DOC], [GOOGLE_DOC] * 9, Style.SPHINX, Style.SPHINX, id="forced-wins"),
        pytest.param([NUMPY_DOC], [GOOGLE_DOC] * 9, None, Style.NUMPY, id="file-evidence"),
        pytest.param([PROSE], [GOOGLE_DOC] * 9, None, Style.GOOGLE, id="file-one-liner-repo"),
        pytest.param([], [SPHINX_DOC], None, Style.SPHINX, id="repo-evidence"),
        pytest.param([PROSE] * 6, [GOOGLE_DOC], None, Style.PLAIN, id="file-prose-only"),
        pytest.param([], [PROSE] * 3, None, Style.NUMPY, id="default"),
    ],
)
def test_detect_for_file(
    file_docs: list[str], repo_docs: list[str], forced: Style | None, expected: Style
) -> None:
    assert detect_for_file(file_docs, repo_docs, forced, Style.NUMPY) == expected


# ------------------------------------------------------------------ compose: goldens

RICH_TARGET = factories.make_target(
    path="pkg/store.py",
    qualname="Store.put",
    kind="method",
    start=10,
    def_line=10,
    header_end=16,
    body_start=17,
    end=30,
    indent="    ",
    body_indent="        ",
    params=(
        Param("self", "positional"),
        Param("key", "positional", "str"),
        Param("value", "positional", "'Record'"),
        Param("ttl", "kwonly", "float | None", "None"),
        Param("tags", "vararg", "str"),
        Param("options", "varkw", "Any"),
        Param("undocumented", "kwonly", "bool", "False"),
    ),
    returns="dict[str, list[int]]",
    raises=("KeyError",),
)
RICH_PARTS = DocParts(
    summary="Store a record under a key",
    description=(
        "The record is written through to the backing store and cached. Writes are "
        "atomic: readers see either the old or the new record, never a mix of both.\n\n"
        "Example::\n\n    store.put('a', record, ttl=3.0)\n    store.get('a')\n\n"
        "- first point\n- second point"
    ),
    params=(
        ("ttl", "Seconds until the record expires; None keeps it until evicted by the LRU."),
        ("key", "Where to store it."),
        ("ghost", "A parameter the function does not have."),
        ("*tags", "Labels for the record."),
        ("options", "Backend options."),
        ("value", "The record."),
    ),
    returns="The index entries written, by shard name.",
    raises=(("KeyError", "If the key is reserved."), ("OSError", "")),
)
GENERATOR_TARGET = make_target(
    (Param("n", "positional", "int"),), returns="Generator[int, None, str]", yields=True
)
GENERATOR_PARTS = DocParts(
    summary="Count up to n!",
    params=(("n", "Upper bound."),),
    yields="The numbers from 0 to n - 1.",
    returns="A goodbye message.",
)
NESTED_TARGET = make_target(
    (Param("data", "positional", "bytes"),), returns="int", body_indent="\t\t\t\t"
)
NESTED_PARTS = DocParts(
    summary="Count the set bits",
    description=" ".join(["This explanation runs long enough to need wrapping."] * 3),
    params=(("data", " ".join(["Input bytes, of any length."] * 4)),),
    returns=" ".join(["The count."] * 8),
)
SUMMARY_ONLY_PARTS = DocParts(summary="  Close the\n connection  ")

COMPOSE_CASES = {
    "rich": (RICH_PARTS, RICH_TARGET),
    "generator": (GENERATOR_PARTS, GENERATOR_TARGET),
    "nested": (NESTED_PARTS, NESTED_TARGET),
    "summary_only": (SUMMARY_ONLY_PARTS, make_target()),
}


@pytest.mark.parametrize("style", list(Style), ids=[s.value for s in Style])
@pytest.mark.parametrize("case", list(COMPOSE_CASES))
def test_compose_golden(case: str, style: Style) -> None:
    parts, target = COMPOSE_CASES[case]
    text = compose(parts, target, style)
    assert_golden(f"compose/{case}.{style.value}.txt", text + "\n")
    if style is Style.PLAIN or case == "summary_only":
        assert classify(text) is None
    else:
        assert classify(text) == style


# ----------------------------------------------------------- compose: behaviour


@pytest.mark.parametrize("style", list(Style), ids=[s.value for s in Style])
def test_compose_params_follow_signature_and_drop_unknown(style: Style) -> None:
    text = compose(RICH_PARTS, RICH_TARGET, style)
    assert "ghost" not in text
    assert "undocumented" not in text  # not described: no entry, nothing invented
    assert "self" not in text
    sections = text.split("- second point", 1)[1]
    names = ("key", "value", "ttl", r"\*tags", r"\*\*options")
    positions = [re.search(rf"(?<![\w*]){name}\b", sections).start() for name in names]
    assert positions == sorted(positions)


@pytest.mark.parametrize("style", list(PARSER_STYLE), ids=[s.value for s in PARSER_STYLE])
def test_compose_parses_back(style: Style) -> None:
    doc = docstring_parser.parse(compose(RICH_PARTS, RICH_TARGET, style), PARSER_STYLE[style])
    assert doc.short_description == "Store a record under a key."
    assert [p.arg_name for p in doc.params] == ["key", "value", "ttl", "*tags", "**options"]
    assert [p.type_name for p in doc.params] == ["str", "Record", "float | None", "str", "Any"]
    assert doc.returns is not None
    assert doc.returns.type_name == "dict[str, list[int]]"
    assert [r.type_name for r in doc.raises] == ["KeyError", "OSError"]


@pytest.mark.parametrize(
    ("summary", "expected"),
    [("Do it", "Do it."), ("Do it.", "Do it."), ("Really?", "Really?"), ("Go!", "Go!"), ("", "")],
)
def test_summary_punctuation(summary: str, expected: str) -> None:
    assert compose(DocParts(summary=summary), make_target(), Style.GOOGLE) == expected


@pytest.mark.parametrize("style", list(Style), ids=[s.value for s in Style])
@pytest.mark.parametrize("body_indent", ["    ", "        ", "\t\t", " " * 24])
def test_compose_wraps_within_width(style: Style, body_indent: str) -> None:
    target = make_target(
        (Param("alpha", "positional", "int"), Param("beta", "kwonly")),
        returns="int",
        body_indent=body_indent,
    )
    long = " ".join(f"word{i}" for i in range(80))
    parts = DocParts(
        summary="Short.",
        description=long,
        params=(("alpha", long), ("beta", long)),
        returns=long,
        yields=long,
        raises=(("ValueError", long),),
    )
    text = compose(parts, target, style, width=72)
    limit = text_width(target, 72)
    assert limit == max(72 - len(body_indent.expandtabs(4)), 40)
    assert all(len(line) <= limit for line in text.splitlines())
    assert all(line == line.rstrip() for line in text.splitlines())
    # Nothing lost in wrapping.
    assert text.count("word79") == 6


def test_compose_never_breaks_long_words_or_hyphens() -> None:
    url = "https://example.com/" + "x" * 120
    parts = DocParts(summary="S.", description=f"See {url} and well-known-hyphenated-words here.")
    text = compose(parts, make_target(), Style.GOOGLE, width=40)
    assert url in text.splitlines()
    assert "well-known-hyphenated-words" in text


def test_compose_keeps_line_structure_of_literal_blocks_and_lists() -> None:
    text = compose(RICH_PARTS, RICH_TARGET, Style.GOOGLE)
    assert "    store.put('a', record, ttl=3.0)\n    store.get('a')" in text
    assert "- first point\n- second point" in text


@pytest.mark.parametrize("style", list(Style), ids=[s.value for s in Style])
def test_compose_keeps_indentation_of_a_literal_block_after_the_first_line(style: Style) -> None:
    parts = DocParts("S.", description="Example::\n\n    f(1)\n        g()", returns="R.")
    text = compose(parts, make_target(returns="int"), style)
    assert "Example::\n\n    f(1)\n        g()\n" in text


def test_compose_does_not_start_a_line_with_a_sphinx_role() -> None:
    description = "Return a thing " + " ".join(["see :class:`Foo`"] * 20)
    text = compose(DocParts("S.", description=description), make_target(), Style.SPHINX, 60)
    assert not any(line.lstrip().startswith(":") for line in text.splitlines())
    assert docstring_parser.parse(text, PARSER_STYLE[Style.SPHINX]).meta == []


def test_compose_matches_star_names_either_way() -> None:
    target = make_target((Param("args", "vararg"), Param("kwargs", "varkw")))
    parts = DocParts("S.", params=(("args", "Positional."), ("**kwargs", "Keywords.")))
    assert compose(parts, target, Style.GOOGLE) == (
        "S.\n\nArgs:\n    *args: Positional.\n    **kwargs: Keywords."
    )


def test_compose_first_description_wins_for_duplicates() -> None:
    target = make_target((Param("x", "positional"),))
    parts = DocParts("S.", params=(("x", "First."), ("x", "Second.")))
    assert compose(parts, target, Style.SPHINX) == "S.\n\n:param x: First."


def test_compose_does_not_sanitize_quotes_or_backslashes() -> None:
    parts = DocParts(summary='Say """hi""" with a \\n', description="C:\\path")
    text = compose(parts, make_target(), Style.PLAIN)
    assert '"""hi"""' in text
    assert "C:\\path" in text


@pytest.mark.parametrize(
    ("returns", "yields", "expected_return", "expected_yield"),
    [
        ("Iterator[int]", True, None, "int"),
        ("typing.AsyncIterator['Node']", True, None, "Node"),
        ("collections.abc.Generator[tuple[int, str], None, bool]", True, "bool", "tuple[int, str]"),
        ("Generator[int, None, None]", True, "None", "int"),
        ("list[int]", True, None, None),
        ("list[int]", False, "list[int]", None),
        ("'Forward'", False, "Forward", None),
        ("dict[\n    str,\n    int,\n]", False, "dict[str, int]", None),
    ],
)
def test_compose_return_and_yield_types(
    returns: str, yields: bool, expected_return: str | None, expected_yield: str | None
) -> None:
    target = make_target(returns=returns, yields=yields)
    parts = DocParts("S.", returns="R.", yields="Y.")
    doc = docstring_parser.parse(compose(parts, target, Style.SPHINX), PARSER_STYLE[Style.SPHINX])
    assert doc.returns is not None
    assert doc.returns.type_name == expected_return
    numpy = docstring_parser.parse(compose(parts, target, Style.NUMPY), PARSER_STYLE[Style.NUMPY])
    yielded = [m for m in numpy.meta if getattr(m, "is_generator", False)]
    assert [m.type_name for m in yielded] == [expected_yield or "object"]


# --------------------------------------------------- compose: round trip (hypothesis)

WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789", min_size=1, max_size=14)
SENTENCE = st.lists(WORD, min_size=1, max_size=40).map(" ".join)
TEXT = st.lists(SENTENCE, min_size=1, max_size=2).map("\n\n".join)
MAYBE_TEXT = st.one_of(st.just(""), TEXT)
NAME = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True).filter(
    lambda n: n not in {"self", "cls"}
)
ANNOTATION = st.sampled_from(
    [None, "int", "str", "list[int]", "dict[str, int]", "int | None", "Callable[[int], str]"]
)
RETURNS = st.sampled_from(
    [None, "int", "dict[str, int]", "int | None", "Iterator[int]", "Generator[str, None, bool]"]
)
EXCEPTION = st.from_regex(r"([a-z]{1,6}\.)?[A-Z][A-Za-z]{0,10}(Error|Exception)", fullmatch=True)

# What the return/yield type shown should be, per (annotation, is generator).
RETURN_TYPE = {
    (None, False): None,
    ("int", False): "int",
    ("dict[str, int]", False): "dict[str, int]",
    ("int | None", False): "int | None",
    ("Iterator[int]", False): "Iterator[int]",
    ("Generator[str, None, bool]", False): "Generator[str, None, bool]",
    ("Generator[str, None, bool]", True): "bool",
}
YIELD_TYPE = {"Iterator[int]": "int", "Generator[str, None, bool]": "str"}


@st.composite
def targets_and_parts(draw: st.DrawFn) -> tuple[Target, DocParts]:
    names = draw(st.lists(NAME, min_size=0, max_size=6, unique=True))
    kinds = ["positional"] * len(names)
    if len(names) >= 2 and draw(st.booleans()):
        kinds[-2] = "vararg"
    if names and draw(st.booleans()):
        kinds[-1] = "varkw"
    params = tuple(
        Param(name, kind, draw(ANNOTATION)) for name, kind in zip(names, kinds, strict=True)
    )
    is_method = draw(st.booleans())
    if is_method:
        params = (Param("self", "positional"), *params)
    target = make_target(params, kind="method" if is_method else "function")
    target = dataclasses.replace(
        target,
        returns=draw(RETURNS),
        yields=draw(st.booleans()),
        body_indent=draw(st.sampled_from(["    ", "        ", "\t"])),
    )
    described = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
    extra = draw(st.lists(NAME.filter(lambda n: n not in names), max_size=2))
    param_parts = [(name, draw(MAYBE_TEXT)) for name in described + extra]
    param_parts = draw(st.permutations(param_parts))
    parts = DocParts(
        summary=draw(SENTENCE),
        description=draw(MAYBE_TEXT),
        params=tuple(param_parts),
        returns=draw(MAYBE_TEXT),
        yields=draw(MAYBE_TEXT),
        raises=tuple(draw(st.lists(st.tuples(EXCEPTION, MAYBE_TEXT), max_size=3))),
    )
    return target, parts


def _norm(text: str | None) -> str:
    return " ".join((text or "").split())


@pytest.mark.parametrize("style", list(PARSER_STYLE), ids=[s.value for s in PARSER_STYLE])
@settings(max_examples=150, deadline=None)
@given(case=targets_and_parts())
def test_round_trip_through_docstring_parser(style: Style, case: tuple[Target, DocParts]) -> None:
    target, parts = case
    text = compose(parts, target, style)
    doc = docstring_parser.parse(text, PARSER_STYLE[style])

    assert doc.short_description == _norm(parts.summary) + "."
    described = {name for name, _ in parts.params}
    expected_params = [p for p in target.documentable_params if p.name in described]
    assert [p.arg_name for p in doc.params] == [p.display_name for p in expected_params]
    given_desc = dict(parts.params)
    assert [_norm(p.description) for p in doc.params] == [
        _norm(given_desc[p.name]) for p in expected_params
    ]
    assert [p.type_name for p in doc.params] == [p.annotation for p in expected_params]

    returns = [m for m in doc.meta if type(m).__name__ == "DocstringReturns"]
    plain_returns = [m for m in returns if not m.is_generator]
    yielded = [m for m in returns if m.is_generator]
    assert len(plain_returns) == (1 if parts.returns else 0)
    assert len(yielded) == (1 if parts.yields else 0)
    if parts.returns:
        ret = plain_returns[0]
        annotation = RETURN_TYPE.get((target.returns, target.yields))
        shown = ret.type_name
        description = ret.description
        if style is Style.GOOGLE and shown is None and annotation and " " in annotation:
            # docstring_parser's Google parser only takes "type: desc" apart when the
            # type has no spaces or ends with "]"; Napoleon reads it either way.
            assert description.startswith(f"{annotation}: ")
            shown, description = annotation, description[len(annotation) + 2 :]
        expected_type = annotation or ("object" if style is Style.NUMPY else None)
        assert shown == expected_type
        assert _norm(description) == _norm(parts.returns)
    if parts.yields:
        assert _norm(yielded[0].description) == _norm(parts.yields)
        if style is not Style.SPHINX:
            expected_yield = YIELD_TYPE.get(target.returns or "")
            assert yielded[0].type_name == (
                expected_yield or ("object" if style is Style.NUMPY else None)
            )

    assert [r.type_name for r in doc.raises] == [name for name, _ in parts.raises]
    assert [_norm(r.description) for r in doc.raises] == [_norm(d) for _, d in parts.raises]

    has_sections = bool(expected_params or parts.returns or parts.yields or parts.raises)
    assert classify(text) == (style if has_sections else None)


@settings(max_examples=100, deadline=None)
@given(case=targets_and_parts())
def test_plain_has_no_sections(case: tuple[Target, DocParts]) -> None:
    target, parts = case
    text = compose(parts, target, Style.PLAIN)
    assert classify(text) is None
    assert text.splitlines()[0] == _norm(parts.summary) + "."
    for name, desc in parts.params:
        param = next((p for p in target.documentable_params if p.name == name), None)
        if param is not None and desc:
            assert f"``{param.display_name}``" in text


def test_fixture_sources_are_real() -> None:
    # The classify fixtures are docstrings of installed packages, not toy strings.
    assert {case["style"] for case in REAL} == {"google", "numpy", "sphinx", None}
    assert all(re.search(r"\(.+\)$", case["source"]) for case in REAL)


class TestDetectTypes:
    GOOGLE_TYPED = "Do it.\n\nArgs:\n    x (int): The x.\n    y (str): The y.\n"
    GOOGLE_BARE = "Do it.\n\nArgs:\n    x: The x.\n    y: The y.\n"
    NUMPY_TYPED = "Do it.\n\nParameters\n----------\nx : int\n    The x.\n"
    NUMPY_BARE = "Do it.\n\nParameters\n----------\nx\n    The x.\n"
    SPHINX_TYPED = "Do it.\n\n:param x: The x.\n:type x: int\n"
    SPHINX_BARE = "Do it.\n\n:param x: The x.\n"

    @pytest.mark.parametrize(
        ("docs", "style", "expected"),
        [
            ([GOOGLE_TYPED, GOOGLE_TYPED, GOOGLE_BARE], Style.GOOGLE, True),
            ([GOOGLE_BARE, GOOGLE_BARE, GOOGLE_TYPED], Style.GOOGLE, False),
            ([NUMPY_TYPED], Style.NUMPY, True),
            ([NUMPY_BARE, NUMPY_BARE], Style.NUMPY, False),
            ([SPHINX_TYPED], Style.SPHINX, True),
            ([SPHINX_BARE], Style.SPHINX, False),
            (["One line only."], Style.GOOGLE, False),
            (["One line only."], Style.NUMPY, True),
        ],
        ids=[
            "google-typed",
            "google-bare",
            "numpy-typed",
            "numpy-bare",
            "sphinx-typed",
            "sphinx-bare",
            "google-default",
            "numpy-default",
        ],
    )
    def test_majority_of_documented_parameters(self, docs, style, expected):
        assert style_mod.detect_types(docs, style) is expected

    def test_file_evidence_wins_over_the_repo(self):
        assert style_mod.detect_types_for_file(
            [self.GOOGLE_TYPED], [self.GOOGLE_BARE] * 5, Style.GOOGLE
        )
        assert not style_mod.detect_types_for_file(["No params."], [self.GOOGLE_BARE], Style.GOOGLE)

    def test_compose_without_types(self):
        t = factories.make_target(
            params=(Param("x", "positional", "int"),), returns="int", returns_value=True
        )
        parts = DocParts("Double it.", params=(("x", "The x."),), returns="Twice x.")
        assert style_mod.compose(parts, t, Style.GOOGLE, types=False) == (
            "Double it.\n\nArgs:\n    x: The x.\n\nReturns:\n    Twice x."
        )
        assert style_mod.compose(parts, t, Style.SPHINX, types=False) == (
            "Double it.\n\n:param x: The x.\n:returns: Twice x."
        )
        assert "x : int" not in style_mod.compose(parts, t, Style.NUMPY, types=False)
        assert "x (int): The x." in style_mod.compose(parts, t, Style.GOOGLE)
