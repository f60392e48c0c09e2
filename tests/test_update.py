"""Updating stale docstrings: the maintainer's lines stay byte for byte (issue 12).

Real docstrings from Sphinx- (click), NumPy- (numpy) and Google-style (pydantic)
projects, copied verbatim under ``tests/fixtures/update/``.  Each case changes the
signature the way a PR would, runs the whole pipeline offline, applies the suggestion
and asks real ``git diff`` (not ``bot``) which lines changed: exactly the entries that
had to change, nothing else.
"""

from __future__ import annotations

import asyncio
import difflib
import io
import tempfile
import tokenize
from pathlib import Path

import pytest

from bot.config import RepoConfig
from bot.docstrings import doclayout, update
from bot.docstrings.budget import TokenBudget
from bot.docstrings.cache import MemoryCache
from bot.docstrings.llm.offline import OfflineProvider
from bot.docstrings.models import Action, DocParts, FileChange, Style
from bot.docstrings.pipeline import run
from bot.docstrings.proof import same_code
from bot.docstrings.run_state import Context
from bot.docstrings.tokens import TokenCounter, load_encoding
from tests.realgit import git_patches

FIXTURES = Path(__file__).parent / "fixtures" / "update"


def _context(style: Style | None = None) -> Context:
    # The local CLI's rules (no hunk limit): the App would offer these as replacements,
    # the lines are the same.  numpy's helper is private: document private ones too.
    return Context(
        config=RepoConfig(skip_private=False),
        provider=OfflineProvider(),
        cache=MemoryCache(),
        counter=TokenCounter(load_encoding("o200k_base")),
        budget=TokenBudget(20_000),
        style_override=style,
        within_hunks=False,
    )


def _run(base: str, head: str, path: str = "m.py", style: Style | None = None):
    patch = git_patches({path: base.encode()}, {path: head.encode()})[path]
    change = FileChange(path, "modified", patch, head.encode())
    return asyncio.run(run([change], _context(style)))


def _diff(head: str, new: str) -> tuple[list[str], list[str]]:
    """The lines git says were removed and added between ``head`` and ``new``."""
    patch = git_patches({"m.py": head.encode()}, {"m.py": new.encode()}).get("m.py", "")
    removed = [ln[1:] for ln in patch.splitlines() if ln.startswith("-")]
    added = [ln[1:] for ln in patch.splitlines() if ln.startswith("+")]
    return removed, added


def _fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def _outcome(result, qualname: str):
    return next(o for o in result.report.outcomes if o.target.qualname == qualname)


# (fixture, qualname, the PR's edit of the source, removed lines, added lines, reason)
CASES = [
    pytest.param(
        "click_completion.py",
        "get_completion_class",
        [("(shell: str)", "(shell: str, default: str | None = None)")],
        [],
        ["    :param default: The default. Defaults to None."],
        "updated: added parameter default",
        id="sphinx-click-added-parameter",
    ),
    pytest.param(
        "click_completion.py",
        "get_completion_class",
        [
            ("(shell: str)", "(shell: str, strict: bool = False)"),
            (
                "    return _available_shells.get(shell)",
                "    if strict and shell not in _available_shells:\n        raise KeyError(shell)\n"
                "    return _available_shells.get(shell)",
            ),
        ],
        [],
        [
            "    :param strict: The strict. Defaults to False.",
            "    :raises KeyError: Raised on error.",
            "    if strict and shell not in _available_shells:",
            "        raise KeyError(shell)",
        ],
        "updated: added parameter strict; added raises KeyError",
        id="sphinx-click-added-raises",
    ),
    pytest.param(
        "click_app_dir.py",
        "get_app_dir",
        [("roaming: bool = True, ", ""), ("if roaming else", "if True else")],
        [
            "    :param roaming: controls if the folder should be roaming or not on Windows.",
            "                    Has no effect otherwise.",
        ],
        [],
        "updated: removed roaming",
        id="sphinx-click-removed-parameter-raw-string",
    ),
    pytest.param(
        "click_app_dir.py",
        "get_app_dir",
        [("roaming: bool = True", "roam: bool = True"), ("if roaming else", "if roam else")],
        ["    :param roaming: controls if the folder should be roaming or not on Windows."],
        ["    :param roam: controls if the folder should be roaming or not on Windows."],
        "updated: renamed roaming to roam",
        id="sphinx-click-renamed-parameter",
    ),
    pytest.param(
        "numpy_as_pairs.py",
        "_as_pairs",
        [
            (
                "def _as_pairs(x, ndim, as_index=False):",
                "def _as_pairs(x, ndim, as_index=False, copy=False):",
            )
        ],
        [],
        ["    copy", "        The copy. Defaults to False."],
        "updated: added parameter copy",
        id="numpy-added-parameter",
    ),
    pytest.param(
        "numpy_as_pairs.py",
        "_as_pairs",
        [
            ("def _as_pairs(x, ndim, as_index=False):", "def _as_pairs(x, n, as_index=False):"),
            ("(ndim, 2)).tolist()", "(n, 2)).tolist()"),
        ],
        ["    ndim : int"],
        ["    n : int"],
        "updated: renamed ndim to n",
        id="numpy-renamed-parameter",
    ),
    pytest.param(
        "numpy_as_pairs.py",
        "_as_pairs",
        [("as_index=False):", "as_index=False, *, order: str = 'C'):")],
        [],
        ["    order : str", "        The order. Defaults to 'C'."],
        "updated: added parameter order",
        id="numpy-typed-like-its-siblings",
    ),
    pytest.param(
        "numpy_as_pairs.py",
        "_as_pairs",
        [
            ("as_index=False):", "as_index=False, copy=False):"),
            *[("raise ValueError(", "return (")] * 3,
        ],
        [
            "",
            "    Raises",
            "    ------",
            "    ValueError",
            "        If `as_index` is True and `x` contains negative elements.",
            "        Or if `x` is not broadcastable to the shape (`ndim`, 2).",
        ],
        ["    copy", "        The copy. Defaults to False."],
        "updated: added parameter copy; removed raises ValueError",
        id="numpy-no-exception-left-drops-raises",
    ),
    pytest.param(
        "pydantic_alias.py",
        "to_pascal",
        [
            ("def to_pascal(snake: str)", "def to_pascal(text: str)"),
            ("camel = snake.title()", "camel = text.title()"),
        ],
        ["        snake: The string to convert."],
        ["        text: The string to convert."],
        "updated: renamed snake to text",
        id="google-pydantic-renamed-parameter",
    ),
    pytest.param(
        "pydantic_alias.py",
        "to_camel",
        [
            (
                "def to_camel(snake: str) -> str:",
                "def to_camel(snake: str, strict: bool = False) -> str:",
            ),
            (
                "    camel = to_pascal(snake)\n",
                "    camel = to_pascal(snake)\n    if strict and not camel:\n        raise ValueError(snake)\n",
            ),
        ],
        [],
        [
            "        strict: The strict. Defaults to False.",
            "",
            "    Raises:",
            "        ValueError: Raised on error.",
            "    if strict and not camel:",
            "        raise ValueError(snake)",
        ],
        "updated: added parameter strict; added raises ValueError",
        id="google-pydantic-added-parameter-and-raises",
    ),
]


@pytest.mark.parametrize(("fixture", "qualname", "edits", "removed", "added", "reason"), CASES)
def test_only_the_entries_that_had_to_change_change(
    fixture, qualname, edits, removed, added, reason
):
    base = _fixture(fixture)
    head = base
    for old, new in edits:
        assert old in head, old
        head = head.replace(old, new, 1)
    result = _run(base, head)
    outcome = _outcome(result, qualname)
    assert outcome.action == Action.UPDATED, outcome.reason
    assert outcome.reason == reason
    new = result.new_texts["m.py"]
    assert same_code(head, new)
    # The oracle is git: against the PR's head, the suggestion changes only these lines.
    got_removed, got_added = _diff(head, new)
    pr_added = [a for a in _diff(base, head)[1] if "def " not in a]
    assert got_removed == removed
    assert [a for a in got_added if a not in pr_added] == [a for a in added if a not in pr_added]


def test_the_issue_s_rename_keeps_the_description():
    """``ratio`` → ``factor``: the entry keeps "How much to scale it by." (issue 12)."""
    base = (
        "def scale(value, ratio):\n"
        '    """Scale a value.\n\n'
        "    Args:\n"
        "        value: The number to scale.\n"
        "        ratio: How much to scale it by.\n\n"
        "    Returns:\n"
        "        The scaled value.\n"
        '    """\n'
        "    return value * ratio\n"
    )
    head = base.replace("value, ratio)", "value, factor)").replace("* ratio", "* factor")
    result = _run(base, head)
    outcome = _outcome(result, "scale")
    assert outcome.reason == "updated: renamed ratio to factor"
    assert _diff(head, result.new_texts["m.py"]) == (
        ["        ratio: How much to scale it by."],
        ["        factor: How much to scale it by."],
    )


def _string_widths(text: str) -> int:
    """Longest line of the file's string literals, by ``tokenize`` (not bot.docstrings.update)."""
    lines = text.splitlines()
    rows: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.STRING and tok.start[0] != tok.end[0]:
            rows.update(range(tok.start[0], tok.end[0] + 1))
    return max(len(lines[r - 1]) for r in rows)


@pytest.mark.parametrize("fixture", ["click_app_dir.py", "numpy_as_pairs.py"])
def test_the_width_is_the_file_s_own(fixture):
    text = _fixture(fixture)
    assert update.file_width(text) == max(_string_widths(text), 72)


def test_a_file_of_short_docstrings_wraps_at_pep_8_s_72():
    text = 'def f():\n    """Short."""\n'
    assert update.file_width(text) == 72


def _stale_target(source: str, qualname: str):
    from bot.docstrings import extract
    from bot.docstrings.diff import file_diff

    lines = source.count("\n")
    patch = f"@@ -0,0 +1,{lines} @@\n" + "".join("+" + ln + "\n" for ln in source.splitlines())
    result = extract.extract(
        "m.py", source.encode(), file_diff("m.py", "added", patch), RepoConfig()
    )
    return next(t for t in result.targets if t.qualname == qualname)


def test_new_lines_wrap_at_the_file_s_width_and_indent_like_their_siblings():
    base = _fixture("click_app_dir.py")
    head = base.replace("force_posix: bool = False)", "force_posix: bool = False, mode: int = 0)")
    target = _stale_target(head, "get_app_dir")
    width = update.file_width(head)
    long = " ".join(["The permission bits to create the folder with, if it is missing."] * 3)
    parts = DocParts("x", params=(("mode", long),))
    up = update.update_docstring(target, head.splitlines(), Style.SPHINX, parts, width)
    raw = head.splitlines()[target.docstring_span[0] - 1 : target.docstring_span[1]]
    new = [ln for ln in up.lines if ln not in raw]
    assert len(new) > 2 and all(len(ln) <= width for ln in new)
    assert new[0].startswith("    :param mode: The permission")
    # Continuation lines align as click's own entries do (under the description).
    assert all(ln.startswith(" " * 17) and ln[17] != " " for ln in new[1:])
    # Every old line is still there, in order.
    kept = [ln for ln in up.lines if ln in raw]
    assert kept == raw


def test_a_docstring_that_cannot_be_located_is_regenerated_with_a_reason():
    base = (
        "def f(a, b):\n"
        '    """Do it.\n\n'
        "    Args:\n"
        "        a: First.\n"
        "      b: Badly indented.\n"
        '    """\n'
        "    return a + b\n"
    )
    head = base.replace("(a, b)", "(a, c)").replace("a + b", "a + c")
    result = _run(base, head)
    outcome = _outcome(result, "f")
    assert outcome.action == Action.UPDATED
    assert outcome.reason.startswith("regenerated: ")
    assert "indentation" in outcome.reason


def test_a_returns_the_code_no_longer_has_is_removed_and_the_rest_kept():
    base = _fixture("pydantic_alias.py")
    head = base.replace(
        "def to_pascal(snake: str) -> str:", "def to_pascal(snake: str, out: list) -> None:"
    ).replace(
        "    return re.sub('([0-9A-Za-z])_(?=[0-9A-Z])', lambda m: m.group(1), camel)\n",
        "    out.append(re.sub('([0-9A-Za-z])_(?=[0-9A-Z])', lambda m: m.group(1), camel))\n",
        1,
    )
    result = _run(base, head)
    outcome = _outcome(result, "to_pascal")
    assert outcome.reason == "updated: added parameter out; removed Returns"
    removed, added = _diff(head, result.new_texts["m.py"])
    assert removed == ["", "    Returns:", "        The PascalCase string."]
    assert added == ["        out: The out."]


def test_the_model_sees_the_docstring_and_is_asked_only_for_what_it_lacks():
    from bot.docstrings.llm.prompt import UPDATE_NOTE, build_messages
    from bot.docstrings.llm.provider import GenerationItem, GenerationRequest
    from bot.docstrings.llm.schema import response_schema

    base = _fixture("numpy_as_pairs.py")
    head = base.replace("as_index=False):", "as_index=False, copy=False):", 1)
    target = _stale_target(head, "_as_pairs")
    ask = update.needed(target, head.splitlines(), Style.NUMPY)
    assert ask == update.Ask(target.docstring, ("copy",), ())
    request = GenerationRequest(
        (GenerationItem(target, "", update=ask),), Style.NUMPY
    )
    system, user = (m["content"] for m in build_messages(request))
    assert UPDATE_NOTE in system
    assert user.splitlines()[0] == "## 1; update; params: copy"
    assert "```docstring\n" + target.docstring + "\n```" in user
    schema = response_schema(request)["properties"]["docs"]["properties"]["1"]
    assert schema["properties"]["params"]["required"] == ["copy"]
    assert "returns" not in schema["properties"] and "raises" not in schema["properties"]


def test_an_update_that_cannot_be_placed_asks_for_everything():
    source = (
        "def f(a):\n"
        '    """Do it.\n\n'
        "    Args:\n"
        "        a: First.\n"
        '        b: Second."""\n'
        "    return a\n"
    )
    target = _stale_target(source, "f")
    # The closing quotes share the line of the entry to remove: regenerated whole.
    assert update.needed(target, source.splitlines(), Style.GOOGLE) is None


def test_through_the_model_the_answer_fills_only_the_new_entries():
    from bot.cli.sample import make_sample_repo
    from bot.docstrings.localgit import read_changes
    from tests.test_pipeline import run_llm

    root = make_sample_repo(Path(tempfile.mkdtemp()))
    changes = read_changes(root, "main", "feature").changes
    result, _ = run_llm(changes, "normal", "pipeline_normal")
    restock = _outcome(result, "restock")
    assert restock.action == Action.UPDATED
    assert (
        restock.reason
        == "updated: renamed shelf to stock; added parameter count; added raises ValueError"
    )
    lines = restock.docstring.splitlines()
    assert lines[0] == "Put items back on the shelf."  # not the model's summary
    assert "    stock: Stock per SKU." in lines  # the maintainer's text, renamed
    # The model's text for the new entry, wrapped at the file's width.
    text = " ".join(" ".join(lines).split())
    assert "count: Value that controls how restock behaves." in text


def test_a_class_docstring_is_updated_against_its_init():
    base = (
        "class Box:\n"
        '    """A box.\n\n'
        "    Args:\n"
        "        size: How big.\n"
        '    """\n\n'
        "    def __init__(self, size):\n"
        "        self.size = size\n"
    )
    head = base.replace("self, size)", "self, width)").replace("= size", "= width")
    head = head.replace("class Box:", "class Box(object):")
    result = _run(base, head)
    assert _outcome(result, "Box").reason == "updated: renamed size to width"
    removed, added = _diff(head, result.new_texts["m.py"])
    assert (removed, added) == (["        size: How big."], ["        width: How big."])


def test_a_class_without_its_init_in_the_pr_is_regenerated_with_a_reason():
    source = 'class Box:\n    """A box.\n\n    Args:\n        size: How big.\n    """\n'
    target = _stale_target(source, "Box")
    parts = DocParts("A box.")
    with pytest.raises(doclayout.Unlocatable, match="__init__"):
        update.update_docstring(target, source.splitlines(), Style.GOOGLE, parts, 88)
    assert update.needed(target, source.splitlines(), Style.GOOGLE) is None


def test_with_kwargs_a_documented_keyword_is_kept_not_renamed():
    """numpy's ``deprecate(*args, **kwargs)`` documents its keywords: none of them is
    "renamed" to a new parameter, none removed (found running over numpy/lib)."""
    base = (
        "def f(a, **kwargs):\n"
        '    """Do it.\n\n'
        "    Args:\n"
        "        a: First.\n"
        "        b: A keyword it takes.\n"
        '    """\n'
        "    return a, kwargs\n"
    )
    head = base.replace("(a, **kwargs)", "(a, c, **kwargs)").replace("a, kwargs", "a, c, kwargs")
    result = _run(base, head)
    assert _outcome(result, "f").reason == "updated: added parameter c"
    assert _diff(head, result.new_texts["m.py"]) == ([], ["        c: The c."])


@pytest.mark.parametrize(
    ("signature", "docstring", "problem"),
    [
        ("def f(a, *args, **kwargs):", "Do it.\n\nArgs:\n    a: First.", None),
        ("def f(a, **kwargs):", "Do it.\n\nArgs:\n    a: First.\n    b: A keyword.", None),
        ("def f(a):", "Do it.\n\nArgs:\n    a: First.\n    b: Gone.", "does not have: b"),
        ("def f(a, c):", "Do it.\n\nArgs:\n    a: First.", "does not document parameters: c"),
        ("def f(a):", "Do it.\n\nArgs:\n    a: First.\n    a: Again.", None),
        ("def f(a):", "Do it.\n\nArgs:\n    a: First.\n\nReturns:\n    It.", "returns nothing"),
    ],
    ids=["var-undocumented", "kwargs-keyword", "unknown", "missing", "theirs-twice", "returns"],
)
def test_an_update_is_validated_with_the_staleness_rule_s_leniency(signature, docstring, problem):
    from bot.docstrings.validate import check_updated_text

    target = _stale_target(f"{signature}\n    pass\n", "f")
    found = [v.message for v in check_updated_text(docstring, target, Style.GOOGLE)]
    if problem is None:
        assert found == []
    else:
        assert len(found) == 1 and problem in found[0], found


def _documented_functions(path: Path):
    from bot.docstrings import extract, stale

    src = path.read_text(encoding="utf-8")
    n = src.count("\n")
    patch = f"@@ -0,0 +1,{n} @@\n" + "".join("+" + ln + "\n" for ln in src.splitlines())
    from bot.docstrings.diff import file_diff

    config = RepoConfig(skip_private=False)
    found = extract.extract("m.py", src.encode(), file_diff("m.py", "added", patch), config)
    for t in found.targets:
        if t.kind != "class" and t.docstring and stale.documented_params(t.docstring):
            yield src, t


def test_over_pydantic_s_own_docstrings_a_new_parameter_adds_only_its_entry():
    """Every documented function of the installed pydantic (a dependency, Google
    style) gains a parameter: the update adds its entry and keeps every other line
    in order, or says why not; it never crashes."""
    from dataclasses import replace

    import pydantic

    from bot.docstrings.models import Decision, Param
    from bot.docstrings.validate import check_updated_text

    outcomes = {"updated": 0, "regenerated": 0}
    for path in sorted(Path(pydantic.__file__).parent.glob("*.py")):
        for src, t in _documented_functions(path):
            added = Param("zz_new", "kwonly", None, "None")
            stale = replace(t, params=(*t.params, added), decision=Decision.STALE)
            lines = src.splitlines()
            # What the model would be asked for, answered.
            ask = update.needed(stale, lines, Style.GOOGLE)
            if ask is None:
                outcomes["regenerated"] += 1
                continue
            parts = DocParts(
                "-",
                params=tuple((n, f"A new {n}.") for n in ask.params),
                raises=tuple((r, "When it fails.") for r in ask.raises),
            )
            try:
                up = update.update_docstring(stale, lines, Style.GOOGLE, parts, 88)
            except doclayout.Unlocatable:
                outcomes["regenerated"] += 1
                continue
            raw = lines[t.docstring_span[0] - 1 : t.docstring_span[1]]
            assert "added parameter zz_new" in up.summary
            new = [ln for ln in up.lines if ln not in raw]
            assert len([ln for ln in new if ln.strip().startswith("zz_new: ")]) == 1
            if "removed" not in up.summary:  # (raises the code no longer has go)
                # difflib, not bot: the old lines are all there, only insertions.
                ops = difflib.SequenceMatcher(None, raw, up.lines, autojunk=False).get_opcodes()
                assert {op[0] for op in ops} <= {"equal", "insert"}, (path.name, t.qualname)
            assert check_updated_text(up.text, stale, Style.GOOGLE, up.written) == [], t.qualname
            outcomes["updated"] += 1
    assert outcomes["updated"] >= 50
    assert outcomes["regenerated"] <= outcomes["updated"] // 10, outcomes


def test_only_what_docgen_wrote_must_be_safe_text():
    from bot.docstrings.validate import check_updated_text

    target = _stale_target("def f(a):\n    pass\n", "f")
    theirs = "Do it.\n\n```python\nf(1)\n```\n\nArgs:\n    a: First."
    assert check_updated_text(theirs, target, Style.GOOGLE, written="    a: First.") == []
    found = check_updated_text(theirs, target, Style.GOOGLE, written="    a: ```x```")
    assert [v.message for v in found] == ["the docstring contains a code fence"]


def test_a_new_google_entry_is_typed_when_its_siblings_are():
    base = (
        "def area(width: float, height: float) -> float:\n"
        '    """Area of a rectangle.\n\n'
        "    Args:\n"
        "        width (float): Left to right.\n"
        "        height (float): Top to bottom.\n\n"
        "    Returns:\n"
        "        float: The area.\n"
        '    """\n'
        "    return width * height\n"
    )
    head = base.replace("height: float)", "height: float, scale: float = 1.0)")
    head = head.replace("width * height", "width * height * scale")
    result = _run(base, head)
    assert _outcome(result, "area").reason == "updated: added parameter scale"
    removed, added = _diff(head, result.new_texts["m.py"])
    assert (removed, added) == ([], ["        scale (float): The scale. Defaults to 1.0."])


def test_a_sphinx_role_wrapped_onto_its_own_line_stays_in_its_field():
    base = (
        "def f(ctx, value):\n"
        '    """Convert the value.\n\n'
        "    :param ctx: The context, see\n"
        "        :class:`Context` for what it holds.\n"
        "    :param value: The raw value.\n"
        '    """\n'
        "    return ctx, value\n"
    )
    head = base.replace("(ctx, value)", "(ctx, value, strict=False)")
    head = head.replace("return ctx, value", "return ctx, value, strict")
    result = _run(base, head)
    assert _outcome(result, "f").reason == "updated: added parameter strict"
    assert _diff(head, result.new_texts["m.py"]) == (
        [],
        ["    :param strict: The strict. Defaults to False."],
    )


def test_a_raises_entry_for_a_callee_s_exception_is_kept():
    """Only an exception whose ``raise`` the PR deleted loses its entry: one a callee
    raises is the maintainer's knowledge (the numpy case above drops ValueError
    because the PR deleted its raise statements)."""
    base = (
        "def lookup(table, key):\n"
        '    """Find a value.\n\n'
        "    Args:\n"
        "        table: Where to look.\n"
        "        key: What to look for.\n\n"
        "    Returns:\n"
        "        The value.\n\n"
        "    Raises:\n"
        "        KeyError: If the key is missing.\n"
        '    """\n'
        "    return table[key]\n"
    )
    head = base.replace("(table, key)", "(table, key, default=None)")
    head = head.replace("return table[key]", "return table[key] or default")
    result = _run(base, head)
    assert _outcome(result, "lookup").reason == "updated: added parameter default"
    assert _diff(head, result.new_texts["m.py"]) == (
        [],
        ["        default: The default. Defaults to None."],
    )


@pytest.mark.parametrize(
    ("entry", "renamed"),
    [
        ("        ratio (float): How much.", "        factor (int): How much."),
        ("        ratio: How much.", "        factor: How much."),
    ],
    ids=["typed", "untyped"],
)
def test_a_renamed_entry_takes_the_new_parameter_s_type(entry, renamed):
    base = (
        "def scale(value: float, ratio: float) -> float:\n"
        '    """Scale a value.\n\n'
        "    Args:\n"
        "        value (float): The number.\n"
        f"{entry}\n\n"
        "    Returns:\n"
        "        The scaled value.\n"
        '    """\n'
        "    return value * ratio\n"
    )
    head = base.replace("ratio: float)", "factor: int)").replace("* ratio", "* factor")
    result = _run(base, head)
    assert _diff(head, result.new_texts["m.py"]) == ([entry], [renamed])


def test_a_numpy_type_that_adds_to_the_annotation_is_kept_on_rename():
    base = _fixture("numpy_as_pairs.py")
    head = base.replace("as_index=False):", "as_index: bool = False):", 1)
    head = head.replace("def _as_pairs(x, ndim, as_index", "def _as_pairs(x, n: int, as_index")
    result = _run(base, head)
    removed, added = _diff(head, result.new_texts["m.py"])
    assert (removed, added) == (["    ndim : int"], ["    n : int"])
