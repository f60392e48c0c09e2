"""The model side of the pipeline: providers, prompts, answer schemas and parsing.

:mod:`~bot.llm.provider` (request, result, protocol), :mod:`~bot.llm.prompt` and
:mod:`~bot.llm.context` (what is sent), :mod:`~bot.llm.schema` (the answer's shape),
:mod:`~bot.llm.answer` (reading it), :mod:`~bot.llm.failures` and :mod:`~bot.llm.limit`
(retries, concurrency), :mod:`~bot.llm.openai_provider`, :mod:`~bot.llm.offline`,
:mod:`~bot.llm.factory`.
"""
