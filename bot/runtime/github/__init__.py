"""The only package that talks to GitHub: App auth, pull-request reads, review and check-run writes.

Built on githubkit (async); import each name from the module that owns it:

* :mod:`~bot.runtime.github.sansio` — no I/O: which requests are writes, what an answer means
  (return / retry after N s / wait for the rate limit / refresh the token / raise which
  error), :class:`~bot.runtime.github.sansio.RetryPolicy`.
* :mod:`~bot.runtime.github.errors` — the one exception tree (:class:`GitHubError` and kin).
* :mod:`~bot.runtime.github.payloads` — review and check-run bodies (pure, tested with ``==``).
* :mod:`~bot.runtime.github.pulls` — GitHub's answers about a PR read into values (pure).
* :mod:`~bot.runtime.github.graphql` — the blob queries and reading their answers (pure).
* :mod:`~bot.runtime.github.pacing` — :class:`~bot.runtime.github.pacing.WritePacer`: writes one at a
  time, a second apart; reads through.
* :mod:`~bot.runtime.github.connection` — githubkit clients: App JWT, installation tokens in
  a per-installation cache, one SSL context, one HTTP pool per installation.
* :mod:`~bot.runtime.github.session` — sends a request, doing what ``sansio`` decides.
* :mod:`~bot.runtime.github.heads` — a PR's head contents within size limits, measured first.
* :mod:`~bot.runtime.github.client` — :class:`~bot.runtime.github.client.PullRequestAPI` (the calls
  docgen makes) and :class:`~bot.runtime.github.client.InstallationClients` (one client per
  installation, forgotten when it is deleted).

Requests pin ``X-GitHub-Api-Version: 2022-11-28`` (githubkit sends its newest, which
GitHub Enterprise Server rejects).  Exception messages carry the method, route, status
and GitHub's message: never a token, the JWT or the private key.
"""
