"""The docstring pipeline: one half of docgen, the same for the App and ``docgen review``.

A change (GitHub's patches or a local ``git diff``) → changed definitions
(:mod:`~bot.docstrings.diff`, :mod:`~bot.docstrings.extract`) → their style
(:mod:`~bot.docstrings.style`, :mod:`~bot.docstrings.voice`) → docstrings from the model
within a token budget (:mod:`~bot.docstrings.model_calls`, :mod:`~bot.docstrings.llm`,
:mod:`~bot.docstrings.budget`, :mod:`~bot.docstrings.cache`) or in-place updates
(:mod:`~bot.docstrings.update`) → checks and the proof that only docstrings change
(:mod:`~bot.docstrings.validate`, :mod:`~bot.docstrings.proof`) → what is shown
(:mod:`~bot.docstrings.render`).  :mod:`~bot.docstrings.pipeline` wires it together.

Everything here is pure except the provider (the one network call) and
:mod:`~bot.docstrings.localgit`; nothing here imports :mod:`bot.runtime`.
"""
