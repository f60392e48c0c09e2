"""validate: a candidate docstring's content checked against the signature."""

from __future__ import annotations

import pytest

from bot.docstrings import validate
from bot.docstrings.models import DocParts, Param
from tests.factories import scale_target

GOOD = DocParts(
    summary="Multiply every value by a constant factor.",
    params=(("values", "Numbers to scale."), ("factor", "The multiplier.")),
    returns="The scaled numbers.",
)


def codes(violations) -> list[str]:
    return [v.code for v in violations]


class TestCheckParts:
    def test_good_candidate_passes(self):
        assert validate.check_parts(GOOD, scale_target()) == []

    @pytest.mark.parametrize(
        ("summary", "restated"),
        [
            ("Scale.", True),
            ("Scale the values.", True),  # only stopwords beyond the name
            ("Multiply each value by a factor.", False),
        ],
        ids=["bare-name", "name-plus-stopwords", "real-summary"],
    )
    def test_restating_the_name(self, summary, restated):
        parts = DocParts(summary, params=GOOD.params, returns=GOOD.returns)
        got = codes(validate.check_parts(parts, scale_target()))
        assert (validate.RESTATES_NAME in got) is restated

    def test_restatement_allowed_for_offline_skeletons(self):
        parts = DocParts("Scale.", params=GOOD.params, returns=GOOD.returns)
        assert validate.check_parts(parts, scale_target(), allow_restated=True) == []

    def test_wrong_and_missing_parameter_names(self):
        parts = DocParts(GOOD.summary, params=(("vals", "x"),), returns="y")
        got = validate.check_parts(parts, scale_target())
        assert codes(got) == [validate.UNKNOWN_PARAM, validate.MISSING_PARAM]
        assert "vals" in got[0].message and "values, factor" in got[0].message

    def test_self_is_not_expected_and_stars_are_ignored(self):
        t = scale_target(
            kind="method",
            qualname="Scaler.scale",
            params=(Param("self", "positional"), Param("args", "vararg"), Param("kw", "varkw")),
            returns=None,
            returns_value=False,
        )
        parts = DocParts("Multiply the stored numbers.", params=(("*args", "a"), ("**kw", "b")))
        assert validate.check_parts(parts, t) == []

    @pytest.mark.parametrize(
        ("changes", "parts_kw", "expected"),
        [
            (
                {"returns_value": False, "returns": None},
                {"returns": "Something."},
                validate.SPURIOUS_RETURNS,
            ),
            ({}, {"returns": ""}, validate.MISSING_RETURNS),
            (
                {"yields": True, "returns_value": False, "returns": "Iterator[int]"},
                {"returns": ""},
                validate.MISSING_YIELDS,
            ),
            ({}, {"yields": "Numbers."}, validate.SPURIOUS_YIELDS),
            ({"raises": ("ValueError",)}, {}, validate.MISSING_RAISES),
            ({}, {"raises": (("KeyError", "Never."),)}, validate.UNKNOWN_RAISES),
        ],
        ids=[
            "spurious-returns",
            "missing-returns",
            "missing-yields",
            "spurious-yields",
            "missing-raises",
            "invented-raises",
        ],
    )
    def test_sections_must_agree_with_the_code(self, changes, parts_kw, expected):
        kw = dict(summary=GOOD.summary, params=GOOD.params, returns=GOOD.returns)
        kw.update(parts_kw)
        assert expected in codes(validate.check_parts(DocParts(**kw), scale_target(**changes)))

    def test_qualified_exception_names_match_short_ones(self):
        t = scale_target(raises=("errors.BadInput",))
        parts = DocParts(
            GOOD.summary,
            params=GOOD.params,
            returns=GOOD.returns,
            raises=(("BadInput", "On bad input."),),
        )
        assert validate.check_parts(parts, t) == []

    @pytest.mark.parametrize(
        "hostile",
        [
            'Scale values."""\nimport os; os.system("rm -rf /")\n"""',
            "Scale values.'''",
            "Scale values.\n```python\nprint(1)\n```",
            "Scale values.\x00",
            "Scale values \u202e gnirts",
        ],
        ids=["close-triple-double", "close-triple-single", "code-fence", "nul", "bidi-override"],
    )
    def test_text_that_could_escape_the_string_is_rejected(self, hostile):
        for field in ("summary", "description"):
            kw = dict(summary=GOOD.summary, params=GOOD.params, returns=GOOD.returns)
            kw[field] = hostile if field == "description" else hostile.replace("\n", " ")
            assert validate.UNSAFE_TEXT in codes(
                validate.check_parts(DocParts(**kw), scale_target())
            )


class TestCheckText:
    def test_google_text_reads_back(self):
        text = "Multiply values.\n\nArgs:\n    values: Numbers.\n    factor: Multiplier.\n\nReturns:\n    The numbers."
        assert validate.check_text(text, scale_target(), validate.Style.GOOGLE) == []

    def test_google_text_with_a_wrong_param(self):
        text = "Multiply values.\n\nArgs:\n    values: Numbers.\n    fac: Multiplier."
        got = codes(validate.check_text(text, scale_target(), validate.Style.GOOGLE))
        assert got == [validate.UNKNOWN_PARAM, validate.MISSING_PARAM]
