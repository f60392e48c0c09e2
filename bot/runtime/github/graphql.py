"""GitHub's GraphQL API: the endpoint, the blob queries docgen sends, reading their answers.

All pure: the documents are built from variables (a path never becomes query text) and
the answers are read into ``{alias: node}``; sending is the client's job.
https://docs.github.com/en/graphql/guides/forming-calls-with-graphql
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import httpx
from githubkit.graphql import GraphQLError

from bot.runtime.github.errors import Forbidden, GitHubError, NotFound
from bot.runtime.github.pulls import FileEntry
from bot.runtime.github.sansio import GRAPHQL_ROUTE

log = logging.getLogger(__name__)

# Aliased ``object`` fields per GraphQL query: 100 keeps a query at 1 point and well
# under the node limit.
# https://docs.github.com/en/graphql/overview/rate-limits-and-query-limits-for-the-graphql-api
GRAPHQL_BATCH = 100
_GRAPHQL_ERRORS: dict[str, type[GitHubError]] = {"NOT_FOUND": NotFound, "FORBIDDEN": Forbidden}


def graphql_url(api_url: httpx.URL | str) -> str:
    """GitHub's GraphQL endpoint beside a REST base URL.

    github.com: ``https://api.github.com`` → ``https://api.github.com/graphql``;
    GitHub Enterprise Server: ``https://HOST/api/v3`` → ``https://HOST/api/graphql``.
    https://docs.github.com/en/enterprise-server@latest/graphql/guides/forming-calls-with-graphql#the-graphql-endpoint
    """
    url = httpx.URL(str(api_url))
    path = url.path.rstrip("/")
    path = path.removesuffix("/v3") + "/graphql" if path.endswith("/api/v3") else path + "/graphql"
    return str(url.copy_with(path=path, query=None))


_BLOB_FIELDS = "oid byteSize isBinary isTruncated text"


@functools.cache
def _objects_document(
    operation: str, argument: str, prefix: str, kind: str, selection: str, count: int
) -> str:
    """A query reading ``count`` objects of one repository, alias ``f<i>`` for the
    ``i``-th, each looked up by ``object(<argument>: $<prefix><i>)`` of GraphQL type
    ``kind`` and read as a Blob's ``selection``."""
    variables = "".join(f", ${prefix}{i}: {kind}" for i in range(count))
    fields = "".join(
        f"\n    f{i}: object({argument}: ${prefix}{i}) {{ ... on Blob {{ {selection} }} }}"
        for i in range(count)
    )
    return (
        f"query {operation}($owner: String!, $name: String!{variables}) {{"
        f"\n  repository(owner: $owner, name: $name) {{{fields}\n  }}\n}}"
    )


def head_blobs_query(
    owner: str, repo: str, sha: str, paths: Sequence[str]
) -> tuple[str, dict[str, Any]]:
    """The GraphQL query (and its variables) reading ``paths`` at commit ``sha``.

    Alias ``f<i>`` answers for ``paths[i]``; the expressions ``<sha>:<path>`` are
    variables ``$e<i>``, so a path is never part of the query's text.
    https://docs.github.com/en/graphql/reference/objects#repository (``object``)
    """
    variables: dict[str, Any] = {"owner": owner, "name": repo}
    variables.update({f"e{i}": f"{sha}:{path}" for i, path in enumerate(paths)})
    document = _objects_document(
        "DocgenHeadBlobs", "expression", "e", "String!", _BLOB_FIELDS, len(paths)
    )
    return document, variables


_SIZE_FIELDS = "byteSize"


def blob_sizes_query(owner: str, repo: str, shas: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The GraphQL query (and its variables) reading the size of the blobs ``shas``.

    Alias ``f<i>`` answers for ``shas[i]``: ``byteSize`` only, never the text, so a
    file is measured before a byte of it is downloaded.  By blob id (the PR's file
    list names each head blob), so the size is that of the bytes the patch describes.
    https://docs.github.com/en/graphql/reference/objects#repository (``object(oid:)``)
    """
    variables: dict[str, Any] = {"owner": owner, "name": repo}
    variables.update({f"o{i}": sha for i, sha in enumerate(shas)})
    document = _objects_document(
        "DocgenBlobSizes", "oid", "o", "GitObjectID!", _SIZE_FIELDS, len(shas)
    )
    return document, variables


class ViaRest:
    """GraphQL's answer for a file is not its bytes: read it through REST."""


VIA_REST = ViaRest()


def blob_content(node: Any, entry: FileEntry) -> bytes | ViaRest | None:
    """What one GraphQL ``Blob`` gives for ``entry``: its bytes, None, or ``VIA_REST``.

    Only text GitHub sent whole, of exactly ``byteSize`` bytes once encoded as UTF-8,
    is the file: anything else goes to REST, which gives the raw bytes that the
    pipeline turns into a skip with its reason (binary, not UTF-8, too large).
    """
    if not isinstance(node, dict) or "isBinary" not in node:
        return VIA_REST  # null: missing at that commit, or an error for this alias; a tree
    if entry.sha and node.get("oid") not in (None, entry.sha):
        return VIA_REST  # not the blob the PR's file list names
    if node.get("isBinary"):
        return VIA_REST  # GitHub showed a patch (files without one are not read)
    text = node.get("text")
    if not isinstance(text, str) or node.get("isTruncated"):
        return VIA_REST
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: GitHub's rendering, not the bytes
        return VIA_REST
    return data if len(data) == node.get("byteSize") else VIA_REST


def repository_nodes(data: dict[str, Any], errors: Sequence[GraphQLError]) -> dict[str, Any] | None:
    """``{alias: node}`` of an answer over ``repository`` (alias null or errored → None).

    None when GraphQL could not answer for the repository at all for a reason other
    than access (e.g. a GitHub Enterprise Server whose schema lacks a field): the
    caller reads those files through REST.  Partial answers are GraphQL's normal:
    ``data`` with ``errors`` naming the ``path`` of what failed.
    https://docs.github.com/en/graphql/guides/forming-calls-with-graphql#communicating-with-graphql

    Raises:
        NotFound, Forbidden: GraphQL's own error says the repository is not readable.
    """
    repository = data.get("repository")
    if not isinstance(repository, dict):
        for error in errors:
            kind = _GRAPHQL_ERRORS.get(error.type or "")
            if kind is not None and (error.path or ["repository"])[0] == "repository":
                label = f"POST {GRAPHQL_ROUTE}"
                raise kind(f"{label}: {error.message}", route=label, errors=[error.message])
        log.warning(
            "GitHub GraphQL could not read blobs (%s); reading them through REST",
            "; ".join(e.message for e in errors) or "no repository in the answer",
        )
        return None
    nodes = dict(repository)
    for error in errors:
        path = error.path or []
        if len(path) >= 2 and path[0] == "repository" and isinstance(path[1], str):
            nodes[path[1]] = None  # its data, if any, is not to be trusted
        else:
            log.warning("GitHub GraphQL error beside the blobs: %s", error.message)
    return nodes
