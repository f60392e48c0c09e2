"""The only package that talks to GitHub: App auth, pull-request reads, review and check-run writes.

Built on githubkit (async); import each name from the module that owns it:

* :mod:`~bot.github.sansio` — no I/O: which requests are writes, what an answer means
  (return / retry after N s / wait for the rate limit / refresh the token / raise which
  error), :class:`~bot.github.sansio.RetryPolicy`.
* :mod:`~bot.github.errors` — the one exception tree (:class:`GitHubError` and kin).
* :mod:`~bot.github.payloads` — review and check-run bodies (pure, tested with ``==``).
* :mod:`~bot.github.pulls` — GitHub's answers about a PR read into values (pure).
* :mod:`~bot.github.graphql` — the blob queries and reading their answers (pure).
* :mod:`~bot.github.pacing` — :class:`~bot.github.pacing.WritePacer`: writes one at a
  time, a second apart; reads through.
* :mod:`~bot.github.connection` — githubkit clients: App JWT, installation tokens in
  a per-installation cache, one SSL context, one HTTP pool per installation.
* :mod:`~bot.github.session` — sends a request, doing what ``sansio`` decides.
* :mod:`~bot.github.heads` — a PR's head contents within size limits, measured first.
* :mod:`~bot.github.client` — :class:`~bot.github.client.PullRequestAPI` (the calls
  docgen makes) and :class:`~bot.github.client.InstallationClients` (one client per
  installation, forgotten when it is deleted).

Requests pin ``X-GitHub-Api-Version: 2022-11-28`` (githubkit sends its newest, which
GitHub Enterprise Server rejects).  Exception messages carry the method, route, status
and GitHub's message: never a token, the JWT or the private key.
"""
