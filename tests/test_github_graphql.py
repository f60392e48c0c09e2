"""Head contents through GraphQL: batched, with REST fallbacks, rate limits, GHES.

Against the fake GitHub's ``POST /graphql``; the last section checks the fake itself.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from githubkit.graphql import GraphQLResponse

from tests.conftest import OWNER, REPO
from tests.fake_github import FakeGitHub, git_blob_sha

run = asyncio.run


# ----------------------------------------------------------- the fake's GraphQL


def post_graphql(fake: FakeGitHub, body: Any, token: str | None = "valid") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=fake.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://api.github.com") as c:
            return await c.post(
                "/graphql",
                content=json.dumps(body),
                headers={"Authorization": f"bearer {token}"} if token else {},
            )

    return run(go())


@pytest.fixture
def token(fake_github) -> str:
    fake_github.tokens["ghs_test"] = (1, float("inf"))
    return "ghs_test"


def test_fake_graphql_answers_in_githubs_shapes(fake_github, make_pr, token):
    pr = make_pr({}, {"pkg/a.py": "a = 1\n", "bin.py": b"\x00x"})
    query = (
        """
      # a comment
      query Q($owner: String!, $name: String!, $a: String!, $missing: String!, $dir: String!) {
        repo: repository(owner: $owner, name: $name) {
          __typename
          nameWithOwner
          a: object(expression: $a) { __typename ...blob }
          bin: object(expression: "HEAD_SHA:bin.py") { ... on Blob { isBinary text byteSize } }
          missing: object(expression: $missing) { ... on Blob { text } }
          dir: object(expression: $dir) { __typename ... on Blob { text } }
        }
      }
      fragment blob on Blob { oid byteSize isBinary isTruncated text }
    """
    ).replace("HEAD_SHA", pr.head_sha)
    variables = {
        "owner": OWNER,
        "name": REPO,
        "a": f"{pr.head_sha}:pkg/a.py",
        "missing": f"{pr.head_sha}:nope.py",
        "dir": "feature-1:pkg",
    }
    response = post_graphql(fake_github, {"query": query, "variables": variables}, token)
    assert response.status_code == 200
    assert response.headers["x-ratelimit-resource"] == "graphql"
    assert response.json() == {
        "data": {
            "repo": {
                "__typename": "Repository",
                "nameWithOwner": "octo/demo",
                "a": {
                    "__typename": "Blob",
                    "oid": git_blob_sha(b"a = 1\n"),
                    "byteSize": 6,
                    "isBinary": False,
                    "isTruncated": False,
                    "text": "a = 1\n",
                },
                "bin": {"isBinary": True, "text": None, "byteSize": 2},
                "missing": None,
                "dir": {"__typename": "Tree"},
            }
        }
    }
    assert GraphQLResponse.model_validate(response.json()).errors is None


def test_fake_graphql_errors_look_like_githubs(fake_github, make_pr, token):
    make_pr({}, {"a.py": "a = 1\n"})
    query = "query Q($owner: String!, $name: String!) {\n  repository(owner: $owner, name: $name) { name }\n}"
    hidden = post_graphql(
        fake_github, {"query": query, "variables": {"owner": "acme", "name": "x"}}, token
    )
    assert hidden.status_code == 200
    assert hidden.json() == {
        "data": {"repository": None},
        "errors": [
            {
                "type": "NOT_FOUND",
                "path": ["repository"],
                "locations": [{"line": 2, "column": 3}],
                "message": "Could not resolve to a Repository with the name 'acme/x'.",
            }
        ],
    }
    bad_vars = post_graphql(
        fake_github,
        {
            "query": "query Q($owner: String!, $x: Int) { repository(owner: $owner, name: $name) { name } }",
            "variables": {"owner": None},
        },
        token,
    ).json()
    assert "data" not in bad_vars
    assert [e["message"] for e in bad_vars["errors"]] == [
        "Variable $name is used by Q but not declared",
        "Variable $x is declared by Q but not used",
        "Variable $owner of type String! was provided invalid value",
    ]
    assert GraphQLResponse.model_validate(bad_vars).errors
    unauthorized = post_graphql(fake_github, {"query": query}, token=None)
    assert unauthorized.status_code == 401
    assert unauthorized.json()["message"] == "Bad credentials"


def test_fake_graphql_refuses_what_it_cannot_answer(fake_github, token):
    response = post_graphql(fake_github, {"query": "{ viewer { login } }"}, token)
    assert response.status_code == 500
    assert fake_github.errors == ["POST /graphql: _CannotHandle: field Query.viewer"]
    fake_github.errors.clear()
