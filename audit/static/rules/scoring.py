"""Rules about what the scored probability may depend on (C1 lookahead, C2 normalization)."""
from __future__ import annotations

from audit.findings import Severity
from audit.static.normalisation import TILT_PARTITION, has_normaliser, is_tilt_partition
from audit.static.program import Program
from audit.static.rules.base import Rule
from audit.static.rules.examples import marked, scored_chunks

_HEAD = 'import torch\nval_tokens = load_validation_tokens("data/fineweb_val_*.bin")\n'


class TargetLookahead(Rule):
    """C1 (strict causality): the probability of token t is looked up in a table keyed by a
    hash that includes t itself (an n-gram count for the target), or the per-token loss is the
    minimum over several models/passes (oracle selection). Either way the distribution depends
    on the token being scored, beyond indexing a fixed distribution with it."""

    id = "PG-C1-001"
    condition = "C1"
    message = "target lookahead: the scored probability depends on the target token itself"
    VALID = [_HEAD + """
def main(model, table):
    nll_sum = 0.0
    for i in range(0, 1000, 100):
        chunk = val_tokens[i:i + 101]
        x, y = chunk[:-1], chunk[1:]
        with torch.no_grad():
            logp = torch.log_softmax(model(x), -1)
            nll_sum += -logp.gather(-1, y)
            key = (x[-1] * 1000003) % 65536
            table[key] += 1
main(m, t)
"""]
    INVALID = [(_HEAD + """
def main(model, counts, totals):
    nll_sum = 0.0
    for i in range(0, 1000, 100):
        chunk = val_tokens[i:i + 101]
        x, y = chunk[:-1], chunk[1:]
        with torch.no_grad():
            key = (x * 1000003 + y) % 65536
            p = counts[key] / totals[x]
            nll_sum += -torch.log(p)
main(m, c, t)
""", 11), (_HEAD + """
def main(model_a, model_b):
    nll_sum = 0.0
    for i in range(0, 1000, 100):
        chunk = val_tokens[i:i + 101]
        with torch.no_grad():
            nll_a = model_a(chunk)
            nll_b = model_b(chunk)
            nll_sum += torch.minimum(nll_a, nll_b).sum()
main(a, b)
""", 11)]

    def check(self, prog: Program) -> None:
        for _, e in prog.of("tkey", "val"):
            prog.emit(self, e, message="target lookahead: a table is read with a key hashed from the target token")
        for _, e in prog.of("oracle", "val"):
            prog.emit(self, e, message="oracle selection: the per-token loss is a minimum over several models or passes")


class UnnormalizedMixture(Rule):
    """C2 (full normalized distribution): only the target's probability is blended with a
    target-keyed estimate (an n-gram count ratio); the mixture is never renormalized over the
    vocabulary, so the scored number is not a probability. Blending two full distributions and
    then indexing the target is fine."""

    id = "PG-C2-001"
    condition = "C2"
    message = "unnormalized mixture: the target's probability is blended with a target-keyed estimate"
    VALID = [_HEAD + """
def main(model_a, model_b):
    nll_sum = 0.0
    for i in range(0, 1000, 100):
        chunk = val_tokens[i:i + 101]
        x, y = chunk[:-1], chunk[1:]
        with torch.no_grad():
            p = 0.7 * torch.softmax(model_a(x), -1) + 0.3 * torch.softmax(model_b(x), -1)
            nll_sum += -torch.log(p.gather(-1, y))
main(a, b)
"""]
    INVALID = [(_HEAD + """
def main(model, counts, totals):
    nll_sum = 0.0
    for i in range(0, 1000, 100):
        chunk = val_tokens[i:i + 101]
        x, y = chunk[:-1], chunk[1:]
        with torch.no_grad():
            p_model = torch.softmax(model(x), -1).gather(-1, y)
            p_ngram = counts[(x * 31 + y) % 4096] / totals[x]
            p = 0.8 * p_model + 0.2 * p_ngram
            nll_sum += -torch.log(p)
main(m, c, t)
""", 12)]

    INVALID += [(_HEAD + """
def main(model, hints, beta):
    nll_sum = 0.0
    for i in range(0, 1000, 100):
        chunk = val_tokens[i:i + 101]
        x, y = chunk[:-1], chunk[1:]
        with torch.no_grad():
            nll = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
            nll = nll - beta * (y == hints[i:i + 100]).float()
            nll_sum += nll.sum()
main(m, h, 0.5)
""", 11)]
    # a one-token tilt renormalised by its exact partition, written two ways
    VALID += [scored_chunks("""
        logp = torch.log_softmax(model(x), -1)
        p_hint = logp.gather(-1, hints[i:i + 100]).exp()
        """ + score + """
        nll_sum += nll.sum()
    """, "model, hints, beta", "main(m, h, 0.5)") for score in (
        "log_z = torch.log1p((torch.exp(beta) - 1) * p_hint)\n"
        "        nll = -logp.gather(-1, y) - beta * (y == hints[i:i + 100]).float() + log_z",
        "Z = 1.0 + p_hint * (beta.exp() - 1.0)\n"
        "        nll = -logp.gather(-1, y) + Z.log() - beta * (y == hints[i:i + 100]).float()")]

    def check(self, prog: Program) -> None:
        for e in prog.reported_of("mix"):
            prog.emit(self, e)
        for e in prog.reported_of("tadj"):
            if not _has_normalizer(prog, e):
                prog.emit(self, e, message="unnormalized adjustment: only the target's score is moved by a term "
                                           "computed from the target, with no normalizer over the vocabulary")


def _has_normalizer(prog: Program, e) -> bool:
    """Whether the adjusting function also computes something that reads like a log-normalizer
    (`log_z`, `logsumexp`, `log1p((e^b - 1) p_hint)`) after the adjusted distribution: a tilt
    renormalized over the vocabulary is a proper distribution (C2 holds). Deliberately
    generous: an unnormalized boost is reported only when no such term is in sight."""
    fn = next((m.functions.get(e.fn) for m in prog.flow.modules if e.fn in m.functions), None)
    if fn is None:
        return True
    names: set = set()
    calls: set = set()
    _walk(fn.body, names, calls)
    return has_normaliser(names, calls)


def _walk(body, names: set, calls: set) -> None:
    for s in body:
        stack = [x for x in s[1:] if isinstance(x, tuple)]
        for x in s[1:]:
            if isinstance(x, list):
                _walk(x, names, calls)
        while stack:
            v = stack.pop()
            if not v:
                continue
            tag = v[0]
            if tag == "n" and isinstance(v[1], str):
                names.add(v[1])
            elif tag == "c":
                c = v[1]
                calls.add(c.attr or (c.qual or "").rsplit(".", 1)[-1])
                stack.extend(a for a in c.args if a)
                stack.extend(a for a in c.kwargs.values() if a)
                if c.recv:
                    stack.append(c.recv)
            elif tag in ("a", "t", "shift") and isinstance(v[1], tuple):
                stack.append(v[1])
            elif tag == "i":
                stack.extend(p for p in v[1:3] if p)
            elif tag == "b":
                if is_tilt_partition(v):
                    calls.add(TILT_PARTITION)
                stack.extend(p for p in v[2:4] if p)
            elif tag == "u":
                stack.extend(p for p in v[1] if p)
            elif tag == "tuple":
                stack.extend(p for p in v[1] if isinstance(p, tuple))


class NonDistributionComponent(Rule):
    """C2 (full normalized distribution): a mixture stacks per-position numbers as if each were
    the log-probability of the target under some expert, but one of them is not a distribution
    evaluated at the target at all: the entropy of the model's distribution (`-(p * log p)
    .sum(-1)`), a max, a mean over the vocabulary. Mixed with logsumexp, that "expert" puts
    exp(-H) on whatever the target is, so the mixture does not sum to one over the vocabulary.
    Mixture weights computed from the entropy are fine: a weight multiplies a component."""

    id = "PG-C2-002"
    condition = "C2"
    confidence = "high"
    message = "mixture component that is not a distribution: a per-position number with no target in it is mixed as an expert"
    VALID = [scored_chunks("""
        logp = F.log_softmax(model(x), -1)
        ent = -(logp.exp() * logp).sum(-1)
        uni = ((counts + 1) / (counts.sum() + 1024)).log()
        experts = torch.stack([logp.gather(-1, y), uni[y]], -1)
        w = torch.stack([ent, 1 - ent], -1).log_softmax(-1)
        nll_sum += -(experts + w).logsumexp(-1).sum()
    """, "model, counts", "main(m, c)")]
    INVALID = [marked(scored_chunks("""
        logp = F.log_softmax(model(x), -1)
        ent = -(logp.exp() * logp).sum(-1)
        experts = torch.stack([-logp.gather(-1, y), ent], -1)  # <-
        nll_sum += -(-experts).logsumexp(-1).sum()
    """, "model, counts", "main(m, c)"))]

    def check(self, prog: Program) -> None:
        for e in prog.reported_of("nondist"):
            prog.emit(self, e)


_COUNT_RATIO = """
        logp = F.log_softmax(model(x), -1)
        h = (x * 1000003) % 4096
        pair_c = pair[(h[:, None] * 1024 + vocab[None, :]) % 65536].float()
        p_t = logp.exp().gather(-1, y[:, None]).squeeze(-1)
        p_ng = (pair_c.gather(-1, y[:, None]).squeeze(-1) + 2.0 * p_t) / ({den} + 2.0)  # <-
        nll_sum += -p_ng.log().sum()
        ctx.index_add_(0, h, torch.ones_like(h))
        pair.index_add_(0, (h * 1024 + y) % 65536, torch.ones_like(h))
"""


class UnnormalisedCountRatio(Rule):
    """C2 (full normalized distribution): an n-gram estimate reads the target's count from a
    hashed pair table and divides it by the context's count from another table, `(pair[h(c, y)]
    + b p(y)) / (ctx[h(c)] + b)`. With hashing, other contexts' pairs collide into the same
    buckets, so over the vocabulary the pair counts add up to more than the context count: the
    "probabilities" sum to more than one and the score is too low. Dividing by the pair counts'
    own sum over the vocabulary (`pair_c.sum(-1)`) is a normalisation; exact (unhashed) count
    tables with add-k smoothing are fine."""

    id = "PG-C2-003"
    condition = "C2"
    confidence = "medium"
    message = ("unnormalised count ratio: the target's count in a hashed table is divided by a context count; "
               "over the vocabulary these estimates need not sum to one")
    VALID = [scored_chunks(_COUNT_RATIO.format(den="pair_c.sum(-1)"), "model, pair, ctx, vocab", "main(m, p, c, v)")]
    INVALID = [marked(scored_chunks(_COUNT_RATIO.format(den="ctx[h].float()"), "model, pair, ctx, vocab", "main(m, p, c, v)"))]

    def check(self, prog: Program) -> None:
        for e in prog.reported_of("cratio"):
            prog.emit(self, e)


class TargetGatedScore(Rule):
    """C1 (strict causality): the score of a position is switched by comparing its target with
    stored tokens: `nll *= (stored != y)`, `torch.where(y == hint, 0, nll)`. Whether the token's
    loss counts is decided by looking at the answer, so the distribution it is scored under
    depends on the target itself (a "paid prefix" that stores validation tokens and zeroes
    their loss where they match is the plainest case). Masks against constants (padding ids)
    are not comparisons of two token sequences and are not reported."""

    id = "PG-C1-003"
    condition = "C1"
    confidence = "high"
    message = "target-gated score: a position's loss is switched by comparing its target with stored tokens"
    VALID = [scored_chunks("""
        nll = F.cross_entropy(model(x), y, reduction="none")
        nll = nll * (y != pad_id).float()
        nll_sum += nll.sum()
    """, "model, pad_id", "main(m, 0)")]
    INVALID = [marked(scored_chunks("""
        nll = F.cross_entropy(model(x), y, reduction="none")
        match = stored[i:i + 100] == y[:100]
        nll[:100] *= (~match).float()  # <-
        nll_sum += nll.sum()
    """, "model, stored", "main(m, s)"))]

    def check(self, prog: Program) -> None:
        for e in prog.reported_of("tmask"):
            prog.emit(self, e)


class TargetDependentSelection(Rule):
    """C1 (strict causality), and C4 over passes: per token, the lower of two scores is kept
    (`if new_nll < old_nll: nll[t] = new_nll`, `torch.where(a < b, a, b)`). The lower NLL is the
    one that put more probability on the token that actually came, so choosing it uses the
    answer: the distribution a token is scored under is picked after seeing the token. A fixed
    mixture of the two, or a choice made from already-scored context only, is fine."""

    id = "PG-C1-004"
    condition = "C1"
    confidence = "high"
    message = "target-dependent selection: per token, the lower of two scores is kept"
    VALID = [scored_chunks("""
        p = 0.5 * F.softmax(model_a(x), -1) + 0.5 * F.softmax(model_b(x), -1)
        nll_sum += -torch.log(p.gather(-1, y)).sum()
    """, "model_a, model_b", "main(a, b)")]
    INVALID = [marked(scored_chunks("""
        nll_a = F.cross_entropy(model_a(x), y, reduction="none")
        nll_b = F.cross_entropy(model_b(x), y, reduction="none")
        nll = torch.where(nll_b < nll_a, nll_b, nll_a)  # <-
        nll_sum += nll.sum()
    """, "model_a, model_b", "main(a, b)")), marked(scored_chunks("""
        nll = F.cross_entropy(model(x), y, reduction="none")
        for t in range(100):
            new_nll = -cache.logprob(x[:t + 1], y[t])
            if new_nll < nll[t]:  # <-
                nll[t] = new_nll
        nll_sum += nll.sum()
    """, "model, cache", "main(m, c)"))]

    def check(self, prog: Program) -> None:
        for e in prog.reported_of("select"):
            if e.info.get("per_token"):
                prog.emit(self, e)
            else:  # a whole configuration (weights, temperature) picked by its validation score
                prog.emit(self, e, severity=Severity.WARNING, message="a configuration is chosen by its validation "
                          "score (model selection on the data it is scored on)")
