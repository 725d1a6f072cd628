"""Which tokenizer a record's scores were measured with, as far as its logs tell.

`val_loss` is nats per token, so it compares two records only when they share a tokenizer; across
tokenizers only the score per byte compares (rules.md "Statistics"). The logs tell the tokenizer
by up to three printed facts, each kept with its line:

- `name`: the file name of `tokenizer_path` (`fineweb_1024_bpe.model`,
  `fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model`); the folder is the runner's own;
- `vocab`: a printed `vocab_size`;
- `val_tokens`: the number of validation tokens. The validation text is fixed, so the token count
  is the tokenizer's fingerprint on it: SP-1024 62,021,632, SP-4096 45,508,608, SP-8192
  40,540,160, CaseOps SP-8192 47,851,520 (the merged records). Two counts within
  `SAME_TOKENS_REL` are one tokenizer (scripts trim the tail to a multiple of the sequence length:
  at most one sequence, < 0.1 %).

`same_tokenizer(a, b)` is True only when at least one of `name` or `val_tokens` is printed by both
and agrees, and nothing printed by both disagrees. Anything else — a disagreement, or too little
printed to tell — is "not shown to be the same", and comparisons go per byte.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Iterable

from harness.logs import RunLog

SAME_TOKENS_REL = 0.001


@dataclass(frozen=True)
class TokenizerId:
    """What the logs printed about the tokenizer; each field None when no log printed it."""

    name: str | None = None
    vocab: int | None = None
    val_tokens: int | None = None
    name_at: str = ""  # "train_seed42.log:47": where each fact was printed, for messages
    vocab_at: str = ""
    tokens_at: str = ""

    def describe(self) -> str:
        parts = [self.name or "", f"vocab {self.vocab}" if self.vocab else "",
                 f"{self.val_tokens:,} validation tokens" if self.val_tokens else ""]
        text = ", ".join(p for p in parts if p)
        return text or "not printed"

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "vocab": self.vocab, "val_tokens": self.val_tokens,
                "printed_at": {"name": self.name_at, "vocab": self.vocab_at, "val_tokens": self.tokens_at}}


def _basename(path: str) -> str:
    return PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name


def tokenizer_of(runs: Iterable[tuple[str, RunLog]]) -> TokenizerId:
    """The tokenizer facts of a record: the first log (of `(name, run)` pairs) that prints each."""
    name = vocab = tokens = None
    at = {"name": "", "vocab": "", "tokens": ""}
    for rel, run in runs:
        if name is None and run.tokenizer_path is not None:
            name = _basename(run.tokenizer_path.value)
            at["name"] = f"{rel}:{run.tokenizer_path.line}"
        if vocab is None and run.vocab_size is not None:
            vocab = run.vocab_size.value
            at["vocab"] = f"{rel}:{run.vocab_size.line}"
        if tokens is None and run.val_tokens is not None:
            tokens = run.val_tokens.value
            at["tokens"] = f"{rel}:{run.val_tokens.line}"
    return TokenizerId(name, vocab, tokens, at["name"], at["vocab"], at["tokens"])


def _tokens_agree(a: int, b: int) -> bool:
    return abs(a - b) <= SAME_TOKENS_REL * max(a, b)


def same_tokenizer(a: TokenizerId | None, b: TokenizerId | None) -> tuple[bool, str]:
    """(same, why): see the module docstring for the decision."""
    if a is None or b is None:
        return False, "one side's tokenizer is not known"
    agree: list[str] = []
    if a.name and b.name:
        if a.name != b.name:
            return False, f"tokenizer files differ ({a.name} vs {b.name})"
        agree.append(f"tokenizer {a.name}")
    if a.vocab and b.vocab and a.vocab != b.vocab:
        return False, f"vocabulary sizes differ ({a.vocab} vs {b.vocab})"
    if a.val_tokens and b.val_tokens:
        if not _tokens_agree(a.val_tokens, b.val_tokens):
            return False, f"validation token counts differ ({a.val_tokens:,} vs {b.val_tokens:,})"
        agree.append("validation token count")
    if not agree:
        return False, "the logs print too little to tell (no tokenizer file name or validation token count on both sides)"
    return True, "same " + " and ".join(agree)
