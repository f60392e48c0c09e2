"""What a review is shown as: suggestion comments, the check run, terminal/JSON reports.

All text that reaches GitHub goes through :mod:`~bot.docstrings.render.markdown`
(untrusted text made inert, sizes in UTF-8 bytes as GitHub counts them).
"""
