"""The model side of the pipeline: providers, prompts, answer schemas and parsing.

:mod:`~bot.docstrings.llm.provider` (request, result, protocol), :mod:`~bot.docstrings.llm.prompt` and
:mod:`~bot.docstrings.llm.context` (what is sent), :mod:`~bot.docstrings.llm.schema` (the answer's shape),
:mod:`~bot.docstrings.llm.answer` (reading it), :mod:`~bot.docstrings.llm.failures` and :mod:`~bot.docstrings.llm.limit`
(retries, concurrency), :mod:`~bot.docstrings.llm.openai_provider`, :mod:`~bot.docstrings.llm.offline`,
:mod:`~bot.docstrings.llm.factory`.
"""
