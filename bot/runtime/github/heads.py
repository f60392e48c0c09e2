"""Reading a PR's head contents within its limits: measure every file, then read what fits.

Only files the pipeline will review (a patch, in scope), and each measured first
(``byteSize``): a file over the size limit or the run's byte cap is never downloaded.
Contents come from GraphQL, up to 100 files per query; REST blobs only for what GraphQL
cannot give (binary, truncated or non-UTF-8 text).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.runtime.github.graphql import (
    GRAPHQL_BATCH,
    ViaRest,
    blob_content,
    blob_sizes_query,
    head_blobs_query,
)
from bot.runtime.github.pulls import FileEntry, as_object

if TYPE_CHECKING:
    from bot.runtime.github.client import PullRequestAPI


@dataclass(frozen=True)
class FetchLimits:
    """How much of a PR's head one run may download.

    ``max_file_bytes``: a file over it is not downloaded (``max_file_bytes`` in
    ``.github/docgen.yml``); ``max_run_bytes``: all the files of one run together
    (``DOCGEN_MAX_RUN_BYTES``).  None: no limit.
    """

    max_file_bytes: int | None = None
    max_run_bytes: int | None = None


@dataclass(frozen=True)
class HeadContents:
    """What :meth:`PullRequestAPI.head_contents` read.

    ``contents``: path → bytes (None: no content to review); ``skipped``: path → why
    its content was not downloaded (its size against a limit); ``bytes_read``: the
    bytes of content downloaded.
    """

    contents: dict[str, bytes | None]
    skipped: dict[str, str] = field(default_factory=dict)
    bytes_read: int = 0


@dataclass(frozen=True)
class _Size:
    """A blob's size as GitHub reports it, before anything of it is downloaded."""

    bytes: int
    sha: str | None  # the blob to read through REST (None: the PR's list named none)


def too_large(size: int, limit: int) -> str:
    """The skip reason of a file over ``max_file_bytes`` (as bot.docstrings.extract words it)."""
    return f"too large: {size:,} bytes > limit {limit:,} (max_file_bytes); not downloaded"


def over_run_cap(size: int, cap: int) -> str:
    return (
        f"not downloaded: its {size:,} bytes would take the run past its {cap:,}-byte"
        " download cap (DOCGEN_MAX_RUN_BYTES)"
    )


def worth_reading(entry: FileEntry, wanted: Callable[[str], bool] | None) -> bool:
    """Whether the pipeline will look at ``entry``'s content at all.

    Not a removed file, nor one without a patch (binary, or a diff too large to show:
    the pipeline reports it from the list entry alone), nor one the config leaves out.
    """
    if entry.status == "removed" or entry.patch is None:
        return False
    return wanted is None or wanted(entry.filename)


def choose(
    files: Sequence[FileEntry], sizes: dict[str, _Size | str | None], limits: FetchLimits
) -> tuple[list[tuple[FileEntry, _Size]], dict[str, str]]:
    """The files to download (in the list's order) and, for those not, why: a reason
    found while measuring, over ``max_file_bytes``, or past ``max_run_bytes``.

    A file with no size at all (None: GitHub has no such file at head) is neither.
    """
    chosen: list[tuple[FileEntry, _Size]] = []
    skipped: dict[str, str] = {}
    planned = 0
    for entry in files:
        size = sizes.get(entry.filename)
        if isinstance(size, str):
            skipped[entry.filename] = size
        elif size is None:
            continue  # GitHub has no such file at head: "file content unavailable"
        elif limits.max_file_bytes is not None and size.bytes > limits.max_file_bytes:
            skipped[entry.filename] = too_large(size.bytes, limits.max_file_bytes)
        elif limits.max_run_bytes is not None and planned + size.bytes > limits.max_run_bytes:
            skipped[entry.filename] = over_run_cap(size.bytes, limits.max_run_bytes)
        else:
            planned += size.bytes
            chosen.append((entry, size))
    return chosen, skipped


class HeadReader:
    """Reads the head contents of one PR's files through ``api`` (one run's worth)."""

    def __init__(self, api: PullRequestAPI) -> None:
        self.api = api

    async def read(
        self, head_sha: str, files: Sequence[FileEntry], limits: FetchLimits | None = None
    ) -> HeadContents:
        """The bytes of ``files`` at ``head_sha`` within ``limits``; sizes first.

        1. Sizes: one GraphQL query per 100 files asks ``object(oid:)`` of each blob the
           PR's list names for its ``byteSize`` only.  Where GraphQL gives
           nothing (an error, GraphQL unavailable), the size comes from the REST listing
           of the file's directory at ``head_sha`` (no content either).
        2. Files over ``max_file_bytes``, or that would take the run past
           ``max_run_bytes`` (in the list's order), are skipped with that reason:
           none of their bytes is downloaded.
        3. The rest is read (:meth:`_read_heads`): GraphQL ``text``, 100 files per
           query; REST blobs for what GraphQL cannot give exactly.
        https://docs.github.com/en/graphql/reference/objects#blob
        """
        sizes, graphql_ok = await self._sizes(head_sha, files)
        chosen, skipped = choose(files, sizes, limits or FetchLimits())
        contents: dict[str, bytes | None] = dict.fromkeys((f.filename for f in files), None)
        read = await self._read_heads(head_sha, chosen, graphql=graphql_ok)
        contents.update(read)
        return HeadContents(contents, skipped, sum(len(v) for v in read.values() if v))

    async def _sizes(
        self, head_sha: str, files: Sequence[FileEntry]
    ) -> tuple[dict[str, _Size | str | None], bool]:
        """Each file's size (a reason instead when it cannot be read), and whether
        GraphQL answered."""
        sizes: dict[str, _Size | str | None] = {}
        unknown = [f for f in files if not f.sha]
        with_sha = [f for f in files if f.sha]
        graphql_ok = True
        for start in range(0, len(with_sha), GRAPHQL_BATCH):
            batch = with_sha[start : start + GRAPHQL_BATCH]
            query, variables = blob_sizes_query(
                self.api.owner, self.api.repo, [str(f.sha) for f in batch]
            )
            nodes = await self.api.objects(query, variables)
            if nodes is None:
                graphql_ok = False
                unknown.extend(batch)
                continue
            for i, entry in enumerate(batch):
                node = nodes.get(f"f{i}")
                size = node.get("byteSize") if isinstance(node, dict) else None
                if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
                    sizes[entry.filename] = _Size(size, entry.sha)
                else:
                    unknown.append(entry)  # null or an error: ask REST
        listings: dict[str, dict[str, Any]] = {}
        for entry in unknown:
            sizes[entry.filename] = await self._listed_size(head_sha, entry, listings)
        return sizes, graphql_ok

    async def _listed_size(
        self, head_sha: str, entry: FileEntry, listings: dict[str, dict[str, Any]]
    ) -> _Size | str | None:
        """A file's size from its directory's REST listing at ``head_sha`` (cached per
        directory); None when the directory has no such file.

        A listing gives each entry's ``size`` and ``sha`` without content, for up to
        1,000 entries: https://docs.github.com/en/rest/repos/contents#get-repository-content
        """
        parent, _, name = entry.filename.rpartition("/")
        if parent not in listings:
            listings[parent] = await self._listing(parent, head_sha)
        item = listings[parent].get(name)
        if not isinstance(item, dict) or item.get("type") != "file":
            if len(listings[parent]) >= 1_000:
                return "size unknown (GitHub lists 1,000 files of a directory); not downloaded"
            return None
        size, sha = item.get("size"), item.get("sha")
        if not isinstance(size, int) or not isinstance(sha, str):
            return None
        if entry.sha and sha != entry.sha:
            # A push between reading the PR and its files: this run's results are stale
            # (the push's own run supersedes it), and the listed size is not the blob's.
            return "changed on GitHub while this run read it (a newer push); not downloaded"
        return _Size(size, sha)

    async def _listing(self, directory: str, ref: str) -> dict[str, Any]:
        """``{name: entry}`` of a directory at ``ref`` (empty: no such directory)."""
        if "?" in directory or "#" in directory:
            return {}  # githubkit's App auth cannot route these (see _contents_via_parent)
        data = await self.api.contents_json(self.api.owner, self.api.repo, directory, ref)
        entries = (data or {}).get("entries")
        out: dict[str, Any] = {}
        for item in entries if isinstance(entries, list) else []:
            item = as_object(item)
            if isinstance(item.get("name"), str):
                out[item["name"]] = item
        return out

    async def _read_heads(
        self, head_sha: str, chosen: Sequence[tuple[FileEntry, _Size]], *, graphql: bool
    ) -> dict[str, bytes | None]:
        """The bytes of ``chosen`` files, whose sizes fit: GraphQL first, REST for the rest.

        One GraphQL query per 100 files reads each as
        ``object(expression: "<sha>:<path>") { ... on Blob { … } }`` (the expressions
        are variables: a path never becomes query text).  What GraphQL cannot give
        exactly — binary blobs, text it truncated, text that is not the file's bytes
        (not UTF-8), an alias it answered with null or an error — is read through REST
        (``git/blobs/{sha}``, the blob measured in step 1), one file at a time.
        """
        found: dict[str, bytes | None] = {}
        texts = list(chosen) if graphql else []
        rest: list[tuple[FileEntry, _Size]] = [] if graphql else list(chosen)
        for start in range(0, len(texts), GRAPHQL_BATCH):
            batch = texts[start : start + GRAPHQL_BATCH]
            nodes = await self._blobs(head_sha, [e.filename for e, _ in batch])
            if nodes is None:
                rest.extend(batch)
                continue
            for i, (entry, size) in enumerate(batch):
                content = blob_content(nodes.get(f"f{i}"), entry)
                if isinstance(content, ViaRest):
                    rest.append((entry, size))
                else:
                    found[entry.filename] = content
        for entry, size in rest:
            found[entry.filename] = await self.api.get_blob(size.sha) if size.sha else None
        return found

    async def _blobs(self, head_sha: str, paths: Sequence[str]) -> dict[str, Any] | None:
        """``{alias: node}`` for ``paths`` at ``head_sha`` (see :meth:`_objects`)."""
        query, variables = head_blobs_query(self.api.owner, self.api.repo, head_sha, paths)
        return await self.api.objects(query, variables)
