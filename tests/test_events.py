"""events.decide: which webhook does what (pure)."""

from __future__ import annotations

import pytest

from bot.runtime import events
from bot.runtime.events import Forget, Ignore, Options, Reply, Run, decide, parse_command
from tests.webhook_payloads import (
    APP_ID,
    INSTALLATION_ID,
    check_run_event,
    installation_event,
    issue_comment_event,
    pull_request_event,
)


class TestPullRequest:
    @pytest.mark.parametrize("action", sorted(events.PR_ACTIONS))
    def test_actions_that_run(self, action):
        d = decide("pull_request", pull_request_event(action))
        assert d == Run(
            INSTALLATION_ID,
            "Codertocat",
            "Hello-World",
            2,
            "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            f"pull_request.{action}",
        )
        assert d.key == "Codertocat/Hello-World#2"

    @pytest.mark.parametrize(
        ("payload", "kw", "reason"),
        [
            (pull_request_event("closed"), {}, "pull_request.closed is not handled"),
            (pull_request_event("labeled"), {}, "pull_request.labeled is not handled"),
            (pull_request_event("synchronize", state="closed"), {}, "pull request is closed"),
            (pull_request_event("opened", draft=True), {}, "pull request is a draft"),
            (
                pull_request_event("opened", head_repo="forker/Hello-World"),
                {"skip_forks": True},
                "pull request comes from a fork",
            ),
            (pull_request_event("opened", installation=False), {}, "pull_request payload lacks"),
        ],
        ids=["closed", "labeled", "sync-on-closed", "draft", "fork", "no-installation"],
    )
    def test_ignored(self, payload, kw, reason):
        d = decide("pull_request", payload, **kw)
        assert isinstance(d, Ignore) and d.reason.startswith(reason)

    def test_drafts_and_forks_when_configured(self):
        assert isinstance(
            decide("pull_request", pull_request_event(draft=True), run_drafts=True), Run
        )
        fork = pull_request_event(head_repo="forker/Hello-World")
        assert isinstance(decide("pull_request", fork), Run)


class TestComments:
    @pytest.mark.parametrize("association", sorted(events.TRUSTED_ASSOCIATIONS))
    def test_trusted_authors_are_obeyed(self, association):
        d = decide("issue_comment", issue_comment_event("/docgen", association=association))
        assert isinstance(d, Run)
        assert d.head_sha is None and d.trigger == "command" and d.comment_id == 492700400
        assert d.options == Options(force=True)

    @pytest.mark.parametrize(
        "association", ["CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "FIRST_TIMER", "NONE", "MANNEQUIN"]
    )
    def test_others_get_nothing_or_one_polite_reply(self, association):
        payload = issue_comment_event("/docgen", association=association)
        assert isinstance(decide("issue_comment", payload), Ignore)
        d = decide("issue_comment", payload, reply_to_strangers=True)
        assert isinstance(d, Reply) and "only repository owners" in d.body

    def test_bots_including_ourselves_are_ignored(self):
        for login, kind in (
            ("docgen[bot]", "Bot"),
            ("dependabot[bot]", "Bot"),
            ("sneaky[bot]", "User"),
        ):
            d = decide(
                "issue_comment",
                issue_comment_event("/docgen", login=login, kind=kind, association="MEMBER"),
            )
            assert d == Ignore("comment by a bot")

    def test_not_on_a_pr_or_not_ours(self):
        assert isinstance(decide("issue_comment", issue_comment_event(on_pr=False)), Ignore)
        assert isinstance(decide("issue_comment", issue_comment_event("lgtm /docgen")), Ignore)
        assert isinstance(decide("issue_comment", issue_comment_event("/docgenx")), Ignore)
        assert isinstance(decide("issue_comment", issue_comment_event(action="edited")), Ignore)

    def test_help_and_errors_reply(self):
        d = decide("issue_comment", issue_comment_event("/docgen help"))
        assert isinstance(d, Reply) and d.body == events.HELP and d.key.endswith(":reply")
        d = decide("issue_comment", issue_comment_event("/docgen --style fancy"))
        assert isinstance(d, Reply) and "unknown style 'fancy'" in d.body

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            ("/docgen", Options(force=True)),
            ("/docgen\nplease", Options(force=True)),
            ("/docgen src/*.py lib/x.py", Options(("src/*.py", "lib/x.py"), None, True)),
            ("/docgen --style numpy", Options((), "numpy", True)),
            ("/docgen --style=sphinx pkg/*", Options(("pkg/*",), "sphinx", True)),
            ("/docgen help", "help"),
            ("/docgen --frobnicate", "unknown option '--frobnicate'"),
            ("/docgen 'unterminated", "could not read the command: No closing quotation"),
            ("not a command", None),
            ("", None),
        ],
        ids=[
            "bare",
            "multiline",
            "paths",
            "style",
            "style-eq",
            "help",
            "bad-option",
            "bad-quote",
            "other",
            "empty",
        ],
    )
    def test_parse_command(self, body, expected):
        assert parse_command(body) == expected


class TestCheckRuns:
    def test_rerequested(self):
        d = decide("check_run", check_run_event("rerequested"), app_id=APP_ID)
        assert isinstance(d, Run) and d.trigger == "check_run.rerequested" and d.options.force
        assert d.check_run_id == 128620228

    def test_requested_action_button(self):
        d = decide("check_run", check_run_event("requested_action"), app_id=APP_ID)
        assert isinstance(d, Run) and d.trigger == "check_run.requested_action"

    @pytest.mark.parametrize(
        "payload",
        [
            check_run_event("requested_action", identifier="other"),
            check_run_event("rerequested", app_id=1),
            check_run_event("rerequested", with_pr=False),
            check_run_event("created"),
        ],
        ids=["unknown-action", "other-app", "no-pr", "created"],
    )
    def test_ignored(self, payload):
        assert isinstance(decide("check_run", payload, app_id=APP_ID), Ignore)


def test_installation_events():
    assert decide("installation", installation_event("deleted")) == Forget(INSTALLATION_ID)
    assert decide("installation", installation_event("suspend")) == Forget(INSTALLATION_ID)
    assert isinstance(decide("installation", installation_event("created")), Ignore)
    assert isinstance(decide("installation_repositories", installation_event("added")), Ignore)


def test_other_events_and_garbage():
    assert decide("ping", {"zen": "Keep it logically awesome."}) == Ignore("pong")
    assert isinstance(decide("push", {}), Ignore)
    assert isinstance(decide("pull_request", {}), Ignore)
    assert isinstance(decide("pull_request", {"action": "opened", "pull_request": None}), Ignore)
    hostile = [
        {"action": "created", "issue": [], "comment": "x"},
        {"action": "created", "issue": {"pull_request": {}}, "comment": {"body": 5}},
        {"action": "opened", "pull_request": {"head": "x", "base": [], "number": "2"}},
        {"action": "rerequested", "check_run": {"pull_requests": ["x", None]}},
        {"action": "deleted", "installation": "x"},
    ]
    for event in ("issue_comment", "pull_request", "check_run", "installation"):
        for payload in hostile:
            assert isinstance(decide(event, payload), Ignore)
    assert isinstance(decide("pull_request", []), Ignore)  # type: ignore[arg-type]
