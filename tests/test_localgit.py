"""localgit: a local checkout read like a pull request (merge base, patches, contents)."""

from __future__ import annotations

import git
import pytest

from bot.cli.sample import BASE, HEAD, make_sample_repo
from bot.docstrings.localgit import GitError, read_changes


@pytest.fixture
def sample(tmp_path):
    return make_sample_repo(tmp_path)


def by_path(local):
    return {c.path: c for c in local.changes}


def test_feature_branch_against_main(sample):
    local = read_changes(sample, "main", "feature")
    changes = by_path(local)
    assert list(changes) == ["shop/inventory.py"]
    change = changes["shop/inventory.py"]
    assert change.status == "modified"
    assert change.head == HEAD.encode()
    assert change.patch.startswith("@@ ")
    assert "+def cheapest(items: list[Item], limit: int = 3) -> list[Item]:" in change.patch
    assert "diff --git" not in change.patch and "+++ " not in change.patch


def test_three_dot_semantics_ignore_new_commits_on_base(sample):
    repo = git.Repo(sample)
    repo.git.checkout("main")
    (sample / "other.py").write_text("def later():\n    return 1\n")
    repo.index.add(["other.py"])
    repo.index.commit("later work on main")
    local = read_changes(sample, "main", "feature")
    assert [c.path for c in local.changes] == ["shop/inventory.py"]


def test_working_tree_includes_untracked_renames_and_deletions(sample):
    repo = git.Repo(sample)
    (sample / "shop" / "new_mod.py").write_text("def fresh(x):\n    return x\n")
    repo.git.mv("shop/__init__.py", "shop/pkg_init.py")
    local = read_changes(sample, "main")  # the working tree of 'feature'
    changes = by_path(local)
    assert changes["shop/new_mod.py"].status == "added"
    assert changes["shop/new_mod.py"].patch == "@@ -0,0 +1,2 @@\n+def fresh(x):\n+    return x\n"
    assert changes["shop/inventory.py"].head == HEAD.encode()
    renamed = [c for c in local.changes if c.status == "renamed"]
    assert renamed and renamed[0].previous_path == "shop/__init__.py"
    assert local.head_sha is None


def test_deleted_file_has_no_content(sample):
    repo = git.Repo(sample)
    repo.index.remove(["shop/inventory.py"], working_tree=True)
    repo.index.commit("drop")
    change = by_path(read_changes(sample, "main", "HEAD"))["shop/inventory.py"]
    assert change.status == "removed" and change.head is None


def test_binary_file_has_no_patch(sample):
    repo = git.Repo(sample)
    (sample / "blob.py").write_bytes(b"\x00\x01\x02")
    repo.index.add(["blob.py"])
    repo.index.commit("binary")
    change = by_path(read_changes(sample, "main", "HEAD"))["blob.py"]
    assert change.patch is None and change.head == b"\x00\x01\x02"


@pytest.mark.parametrize(
    ("base", "head", "message"),
    [("nope", None, "unknown git ref 'nope'"), ("main", "nope", "unknown git ref 'nope'")],
    ids=["bad-base", "bad-head"],
)
def test_bad_refs_are_clear_errors(sample, base, head, message):
    with pytest.raises(GitError, match=message):
        read_changes(sample, base, head)


def test_not_a_repository(tmp_path):
    with pytest.raises(GitError, match="not inside a git repository"):
        read_changes(tmp_path, "main")


def test_base_text_is_the_sample_base(sample):
    repo = git.Repo(sample)
    assert repo.git.show("main:shop/inventory.py") + "\n" == BASE
