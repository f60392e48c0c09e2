"""Token counting with the tokenizer files vendored in ``bot/data/tiktoken``.

tiktoken would otherwise download them at run time; :func:`load_encoding` reads the
local copy and checks its hash.  :func:`with_margin` is the safety margin every prompt
estimate is reserved with (DESIGN.md, invariant 3).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by load_encoding: an offline review never needs it
    import tiktoken

DATA_DIR = Path(__file__).parents[1] / "data" / "tiktoken"

# Copied from tiktoken_ext/openai_public.py (tiktoken 0.7 – 0.14).  Calling those
# constructors would download the files, so the constants live here.
_ENDOFTEXT = "<|endoftext|>"
_FIM_PREFIX = "<|fim_prefix|>"
_FIM_MIDDLE = "<|fim_middle|>"
_FIM_SUFFIX = "<|fim_suffix|>"
_ENDOFPROMPT = "<|endofprompt|>"


@dataclass(frozen=True)
class _EncodingSpec:
    sha256: str
    pat_str: str
    special_tokens: Mapping[str, int]


ENCODINGS: dict[str, _EncodingSpec] = {
    "o200k_base": _EncodingSpec(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pat_str="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    ),
    "cl100k_base": _EncodingSpec(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pat_str=r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        special_tokens={
            _ENDOFTEXT: 100257,
            _FIM_PREFIX: 100258,
            _FIM_MIDDLE: 100259,
            _FIM_SUFFIX: 100260,
            _ENDOFPROMPT: 100276,
        },
    ),
}
DEFAULT_ENCODING = "o200k_base"


class EncodingIntegrityError(ValueError):
    """A vendored tokenizer file is missing, unreadable or fails its sha256 check."""


def _read_ranks(path: Path, expected_sha256: str) -> dict[bytes, int]:
    # Same format and checks as tiktoken.load.load_tiktoken_bpe, without its cache:
    # that function copies even a local file into TIKTOKEN_CACHE_DIR (or the temp
    # dir) and fails when a user-specified cache dir is read-only.
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EncodingIntegrityError(
            f"cannot read tokenizer file {path.name}: {exc.strerror or exc}"
        ) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise EncodingIntegrityError(
            f"tokenizer file {path.name} failed verification: sha256 {actual[:16]}… "
            f"instead of {expected_sha256[:16]}…; the installation is corrupted, reinstall docgen"
        )
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
        except ValueError as exc:  # pragma: no cover - the hash makes this unreachable
            raise EncodingIntegrityError(f"bad line in tokenizer file {path.name}") from exc
    return ranks


@functools.cache
def load_encoding(name: str, path: Path | None = None) -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, built from the vendored, hash-checked file.

    Loaded once per process (about 0.3 s for o200k_base); never touches the network.
    ``path`` overrides the file (tests).  Raises :class:`EncodingIntegrityError` when
    the file does not match tiktoken's published sha256, ``ValueError`` for an
    unknown name.
    """
    spec = ENCODINGS.get(name)
    if spec is None:
        known = ", ".join(sorted(ENCODINGS))
        raise ValueError(f"unknown tokenizer encoding {name!r} (known: {known})")
    import tiktoken

    ranks = _read_ranks(path or DATA_DIR / f"{name}.tiktoken", spec.sha256)
    return tiktoken.Encoding(
        name=name,
        pat_str=spec.pat_str,
        mergeable_ranks=ranks,
        special_tokens=dict(spec.special_tokens),
    )


# Longest prefix wins; "gpt-4o" must not fall into "gpt-4".
_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),  # Azure's spelling of gpt-3.5 deployments
    ("text-embedding-", "cl100k_base"),
)


def encoding_for_model(model: str, override: str | None = None) -> str:
    """The encoding name to count ``model``'s tokens with.

    ``override`` (``DOCGEN_ENCODING``) wins and must be a vendored encoding.  Unknown
    names (Azure deployment names, other OpenAI-compatible servers) get o200k_base,
    the encoding of every current OpenAI chat model.
    """
    if override:
        if override not in ENCODINGS:
            known = ", ".join(sorted(ENCODINGS))
            raise ValueError(f"unknown tokenizer encoding {override!r} (known: {known})")
        return override
    name = model.strip().lower()
    if name.startswith("ft:"):  # fine-tuned: ft:gpt-4o-mini-2024-07-18:org::id
        name = name[3:]
    best: tuple[str, str] | None = None
    for prefix, encoding in _MODEL_PREFIXES:
        if name.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, encoding)
    return best[1] if best else DEFAULT_ENCODING


# https://cookbook.openai.com/examples/how_to_count_tokens_with_tiktoken
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


class TokenCounter:
    """Counts tokens of text and of chat messages with one encoding.

    Built from an encoding, or with :meth:`lazy` from its name: then the encoding
    (about 0.3 s to load) is read on the first count, so a run that never counts
    (the offline provider) never loads it.
    """

    def __init__(self, encoding: tiktoken.Encoding | None, *, name: str = "") -> None:
        self._encoding = encoding
        self._name = encoding.name if encoding is not None else name

    @classmethod
    def lazy(cls, name: str) -> TokenCounter:
        """A counter that loads the vendored encoding ``name`` when first used."""
        if name not in ENCODINGS:  # a bad name is still an error up front
            known = ", ".join(sorted(ENCODINGS))
            raise ValueError(f"unknown tokenizer encoding {name!r} (known: {known})")
        return cls(None, name=name)

    @property
    def loaded(self) -> bool:
        return self._encoding is not None

    @property
    def encoding(self) -> tiktoken.Encoding:
        if self._encoding is None:
            self._encoding = load_encoding(self._name)
        return self._encoding

    @property
    def name(self) -> str:
        return self._name

    def count(self, text: str) -> int:
        """Tokens in ``text``; special-token text counts as ordinary text."""
        return len(self.encoding.encode_ordinary(text))

    def count_messages(self, messages: Iterable[Mapping[str, object]]) -> int:
        """Prompt tokens of a chat request, with the cookbook's per-message overhead."""
        total = REPLY_PRIMING
        for message in messages:
            total += TOKENS_PER_MESSAGE
            for key, value in message.items():
                if isinstance(value, str):
                    total += self.count(value)
                if key == "name":
                    total += TOKENS_PER_NAME
        return total


def with_margin(prompt_estimate: int) -> int:
    """A prompt estimate plus the safety margin the budget reserves (2 % + 16 tokens).

    Covers the small differences between our count and the provider's (message
    framing, JSON joins between batched items).
    """
    return math.ceil(prompt_estimate * 1.02) + 16
