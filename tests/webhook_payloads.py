"""Webhook payloads in GitHub's documented shapes, trimmed to what matters plus context.

Shapes follow https://docs.github.com/en/webhooks/webhook-events-and-payloads (the
``pull_request``, ``issue_comment``, ``check_run`` and ``installation`` examples):
user and repository objects, ``installation.id``, head/base with sha and repo.
"""

from __future__ import annotations

import copy
from typing import Any

OWNER, REPO = "Codertocat", "Hello-World"
INSTALLATION_ID = 2311213
APP_ID = 31337


def user(login: str = "Codertocat", kind: str = "User") -> dict[str, Any]:
    return {
        "login": login,
        "id": 21031067,
        "node_id": "MDQ6VXNlcjIxMDMxMDY3",
        "avatar_url": "https://avatars1.githubusercontent.com/u/21031067?v=4",
        "url": f"https://api.github.com/users/{login}",
        "html_url": f"https://github.com/{login}",
        "type": kind,
        "site_admin": False,
    }


def repository(full_name: str = f"{OWNER}/{REPO}") -> dict[str, Any]:
    owner, name = full_name.split("/")
    return {
        "id": 186853002,
        "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
        "name": name,
        "full_name": full_name,
        "private": False,
        "owner": user(owner),
        "html_url": f"https://github.com/{full_name}",
        "url": f"https://api.github.com/repos/{full_name}",
        "fork": False,
        "default_branch": "main",
    }


def pull_request_event(
    action: str = "opened",
    *,
    number: int = 2,
    head_sha: str = "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
    base_sha: str = "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
    draft: bool = False,
    state: str = "open",
    head_repo: str = f"{OWNER}/{REPO}",
    installation: bool = True,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "action": action,
        "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{OWNER}/{REPO}/pulls/{number}",
            "id": 279147437,
            "number": number,
            "state": state,
            "locked": False,
            "title": "Update the README with new information.",
            "user": user(),
            "body": "This is a pretty simple change that we need to pull into main.",
            "draft": draft,
            "head": {
                "label": f"{head_repo.split('/')[0]}:changes",
                "ref": "changes",
                "sha": head_sha,
                "user": user(head_repo.split("/")[0]),
                "repo": repository(head_repo),
            },
            "base": {
                "label": f"{OWNER}:main",
                "ref": "main",
                "sha": base_sha,
                "user": user(),
                "repo": repository(),
            },
            "author_association": "OWNER",
        },
        "repository": repository(),
        "sender": user(),
    }
    if action == "synchronize":
        payload["before"] = base_sha
        payload["after"] = head_sha
    if installation:
        payload["installation"] = {
            "id": INSTALLATION_ID,
            "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uMjMxMTIxMw==",
        }
    return payload


def issue_comment_event(
    body: str = "/docgen",
    *,
    association: str = "MEMBER",
    on_pr: bool = True,
    number: int = 2,
    login: str = "Codertocat",
    kind: str = "User",
    action: str = "created",
) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "url": f"https://api.github.com/repos/{OWNER}/{REPO}/issues/{number}",
        "id": 444500041,
        "number": number,
        "title": "Spelling error in the README file",
        "user": user(),
        "state": "open",
        "author_association": "OWNER",
        "body": "It looks like you accidently spelled 'commit' with two 't's.",
    }
    if on_pr:
        issue["pull_request"] = {
            "url": f"https://api.github.com/repos/{OWNER}/{REPO}/pulls/{number}",
            "html_url": f"https://github.com/{OWNER}/{REPO}/pull/{number}",
            "diff_url": f"https://github.com/{OWNER}/{REPO}/pull/{number}.diff",
            "patch_url": f"https://github.com/{OWNER}/{REPO}/pull/{number}.patch",
        }
    return {
        "action": action,
        "issue": issue,
        "comment": {
            "url": f"https://api.github.com/repos/{OWNER}/{REPO}/issues/comments/492700400",
            "html_url": f"https://github.com/{OWNER}/{REPO}/issues/{number}#issuecomment-492700400",
            "id": 492700400,
            "node_id": "MDEyOklzc3VlQ29tbWVudDQ5MjcwMDQwMA==",
            "user": user(login, kind),
            "created_at": "2019-05-15T15:20:21Z",
            "updated_at": "2019-05-15T15:20:21Z",
            "author_association": association,
            "body": body,
        },
        "repository": repository(),
        "sender": user(login, kind),
        "installation": {"id": INSTALLATION_ID},
    }


def check_run_event(
    action: str = "rerequested",
    *,
    identifier: str = "generate",
    app_id: int = APP_ID,
    number: int = 2,
    with_pr: bool = True,
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "action": action,
        "check_run": {
            "id": 128620228,
            "node_id": "MDg6Q2hlY2tSdW4xMjg2MjAyMjg=",
            "head_sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
            "external_id": "",
            "url": f"https://api.github.com/repos/{OWNER}/{REPO}/check-runs/128620228",
            "status": "completed",
            "conclusion": "neutral",
            "name": "docgen",
            "app": {"id": app_id, "slug": "docgen", "name": "docgen", "owner": user()},
            "pull_requests": [
                {
                    "url": f"https://api.github.com/repos/{OWNER}/{REPO}/pulls/{number}",
                    "id": 279147437,
                    "number": number,
                    "head": {
                        "ref": "changes",
                        "sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
                        "repo": {"id": 186853002, "url": "", "name": REPO},
                    },
                    "base": {
                        "ref": "main",
                        "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
                        "repo": {"id": 186853002, "url": "", "name": REPO},
                    },
                }
            ]
            if with_pr
            else [],
        },
        "repository": repository(),
        "sender": user(),
        "installation": {"id": INSTALLATION_ID},
    }
    if action == "requested_action":
        payload["requested_action"] = {"identifier": identifier}
    return payload


def installation_event(action: str = "deleted") -> dict[str, Any]:
    return {
        "action": action,
        "installation": {
            "id": INSTALLATION_ID,
            "account": user("octo-org"),
            "repository_selection": "all",
            "app_id": APP_ID,
            "target_type": "Organization",
            "permissions": {
                "checks": "write",
                "contents": "read",
                "issues": "write",
                "metadata": "read",
                "pull_requests": "write",
            },
            "events": ["check_run", "issue_comment", "pull_request"],
        },
        "sender": user(),
    }


def modified(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    out.update(changes)
    return out
