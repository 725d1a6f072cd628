"""The labelled real cases (benchmarks/legality_cases.yaml, and the held-out sets
benchmarks/legality_heldout.yaml and benchmarks/legality_heldout2.yaml labelled after the audit was
built) and the script that measures the audit against them (benchmarks/audit_accuracy.py).

The YAML is data the issue's figures rest on, so its shape is tested here: every field, the
declared vocabularies, the size and balance the issue asks for, every rules.md pattern covered,
no case twice, and no held-out case that the audit could have been tuned on or that another
labelled file already holds (same pull request, record folder, or audited file). The script is run end to end on a tiny git repository built by the test from
fixture records written below (no upstream code), through the real CLI in a subprocess.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from audit.findings import CONDITIONS

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "audit_accuracy.py"
CASES = REPO / "benchmarks" / "legality_cases.yaml"
HELDOUT = REPO / "benchmarks" / "legality_heldout.yaml"
HELDOUT2 = REPO / "benchmarks" / "legality_heldout2.yaml"
# each labelled file and the fewest cases it must hold
LABELLED = {CASES: 80, HELDOUT: 20, HELDOUT2: 20}
# the held-out files: each shares the tuning set's vocabulary and no case with any other labelled file
HELDOUT_FILES = [HELDOUT, HELDOUT2]

# rules.md's illegal patterns (and the two-pass n-gram table the issue adds), and the legal
# look-alikes the issue asks the audit to clear, in the vocabulary of the cases file.
RULES_ILLEGAL = {
    "adapt_then_score", "pre_eval_ttt", "two_pass_rescore", "val_calibrated_gptq", "ngram_target_blend",
    "ngram_two_pass_table", "noncausal_slot", "oracle_selection", "train_on_val", "paid_prefix",
}
RULES_LEGAL = {
    "plain_eval", "sliding_window_eval", "score_first_ttt", "score_first_ttt_multi_epoch",
    "legal_ngram_mixer", "gptq_train_calib", "gptq_selfgen_calib", "disabled_illegal_code",
}


def _module():
    spec = importlib.util.spec_from_file_location("audit_accuracy", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["audit_accuracy"] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


acc = _module()


# ----------------------------------------------------------------------------- the YAML


@pytest.fixture(scope="module", params=sorted(LABELLED), ids=lambda p: p.name)
def labelled(request):
    return (request.param, *acc.load_cases(request.param))


def test_every_case_has_every_field_from_the_vocabularies(labelled):
    path, vocab, cases = labelled
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]
    assert len(raw) == len(cases)
    for item in raw:
        for key in acc.FIELDS:
            assert key in item, (item.get("id"), key)
    assert set(vocab["conditions"]) <= set(CONDITIONS)  # the audit's own condition names
    for c in cases:
        assert c.label in vocab["labels"]
        assert c.pattern in vocab["patterns"][c.label], c.id
        assert set(c.conditions) <= set(vocab["conditions"]), c.id
        assert bool(c.conditions) == (c.label == "illegal"), c.id
        assert re.fullmatch(r"[0-9a-f]{40}", c.commit), c.id
        assert c.path.startswith(c.record + "/"), c.id
        assert c.where.strip() and c.evidence.strip() and c.family.strip(), c.id


def test_size_balance_and_no_duplicates(labelled):
    path, _, cases = labelled
    assert len(cases) >= LABELLED[path]
    legal = sum(c.label == "legal" for c in cases)
    assert 0.35 <= legal / len(cases) <= 0.65, f"{legal}/{len(cases)} legal"
    keys = Counter((c.commit, c.path) for c in cases)
    assert [k for k, n in keys.items() if n > 1] == []
    assert len({c.id for c in cases}) == len(cases)


def test_every_rules_pattern_is_covered():
    vocab, cases = acc.load_cases(CASES)
    assert RULES_ILLEGAL <= set(vocab["patterns"]["illegal"])
    assert RULES_LEGAL <= set(vocab["patterns"]["legal"])
    seen = {(c.label, c.pattern) for c in cases}
    assert {p for p in RULES_ILLEGAL if ("illegal", p) not in seen} == set()
    assert {p for p in RULES_LEGAL if ("legal", p) not in seen} == set()


def test_cases_are_sampled_broadly(labelled):
    _, _, cases = labelled
    families = Counter(c.family for c in cases)
    assert max(families.values()) <= 0.1 * len(cases), families.most_common(3)
    assert len({c.pr for c in cases}) >= 0.9 * len(cases)


def _upstream_git_dir() -> Path | None:
    """The fetched upstream repository the cases were read from: `$PGOLF_UPSTREAM_GIT`, else the
    bare mirror beside the checkout (../.mirror/openai+parameter-golf/repo)."""
    env = os.environ.get("PGOLF_UPSTREAM_GIT")
    for c in ([Path(env)] if env else []) + [REPO.parent / ".mirror" / "openai+parameter-golf" / "repo"]:
        if (c / "objects").is_dir() or (c / ".git").is_dir():
            return c
    return None


def _others(path: Path) -> list[Path]:
    return [p for p in sorted(LABELLED) if p != path]


@pytest.mark.parametrize("path", HELDOUT_FILES, ids=lambda p: p.name)
def test_heldout_shares_the_vocabulary_and_no_case_with_another_file(path):
    """A held-out figure means something only if the audit never saw its cases: no pull request,
    record folder or audited file in common with the tuning set, nor with another held-out set
    (whose misses may have informed later audit fixes)."""
    vocab, _ = acc.load_cases(CASES)
    held_vocab, held = acc.load_cases(path)
    assert held_vocab == vocab
    for other_path in _others(path):
        _, other = acc.load_cases(other_path)
        assert {c.pr for c in held} & {c.pr for c in other} == set(), other_path.name
        assert {c.record for c in held} & {c.record for c in other} == set(), other_path.name
        assert {(c.commit, c.path) for c in held} & {(c.commit, c.path) for c in other} == set(), other_path.name
    assert {c.label for c in held} == {"legal", "illegal"}
    assert len({c.pattern for c in held}) >= 10


@pytest.mark.parametrize("path", HELDOUT_FILES, ids=lambda p: p.name)
def test_heldout_audits_no_file_another_set_holds(path):
    """The same script copied into another pull request is the same case: compare the audited
    files' git blobs (read from the upstream repository) across every pair of labelled files."""
    git_dir = _upstream_git_dir()
    if git_dir is None:
        pytest.skip("upstream git directory not found: set PGOLF_UPSTREAM_GIT or fetch ../.mirror/openai+parameter-golf/repo")

    def blobs(cases_path: Path) -> dict[str, str]:
        _, cases = acc.load_cases(cases_path)
        query = "".join(f"{c.commit}:{c.path}\n" for c in cases)
        out = subprocess.run(["git", "--git-dir", str(git_dir), "cat-file", "--batch-check"], input=query,
                             capture_output=True, text=True, check=True).stdout.splitlines()
        assert len(out) == len(cases)
        missing = [c.id for c, line in zip(cases, out) if line.endswith(" missing")]
        assert missing == [], f"{cases_path.name}: not in {git_dir}: {missing}"
        return {line.split()[0]: c.id for c, line in zip(cases, out)}

    held = blobs(path)
    for other_path in _others(path):
        shared = held.keys() & blobs(other_path).keys()
        assert shared == set(), (other_path.name, sorted(held[b] for b in shared))


@pytest.mark.parametrize("ref,message", [
    ("missing.yaml", "cannot read"),
    ("../legality_cases.yaml", "beside this one"),
    ("notes.yaml", "no `vocabulary` block"),
])
def test_a_bad_vocabulary_reference_is_a_usage_error(tmp_path, ref, message):
    (tmp_path / "notes.yaml").write_text("just: text\n")
    cases = tmp_path / "cases.yaml"
    cases.write_text(f"vocabulary_from: {ref}\ncases: []\n")
    with pytest.raises(acc.UsageError, match=message) as err:
        acc.load_cases(cases)
    assert str(cases) in str(err.value)


def test_both_or_neither_vocabulary_is_a_usage_error(tmp_path):
    cases = tmp_path / "cases.yaml"
    cases.write_text("vocabulary_from: x.yaml\nvocabulary: {}\ncases: []\n")
    with pytest.raises(acc.UsageError, match="one of `vocabulary` or `vocabulary_from`"):
        acc.load_cases(cases)


# ----------------------------------------------------------------------------- outcome sorting


def _case(label, conditions):
    return acc.Case(id="x", pr=1, commit="0" * 40, record="r", path="r/t.py", label=label, conditions=conditions,
                    pattern="p", family="f", where="w", evidence="e")


@pytest.mark.parametrize("label,conditions,verdict,findings,expected", [
    ("illegal", ["C3"], "FAIL", [{"severity": "error", "condition": "C3"}], "FAIL-right"),
    ("illegal", ["C3"], "FAIL", [{"severity": "error", "condition": "C1"}, {"severity": "warning", "condition": "C3"}], "FAIL-other"),
    ("illegal", ["C1", "C2"], "FAIL", [{"severity": "error", "condition": "C2"}], "FAIL-right"),
    ("illegal", ["C3"], "REVIEW", [{"severity": "note", "condition": "PARSE", "undecided": True}], "REVIEW"),
    ("illegal", ["C3"], "PASS", [{"severity": "warning", "condition": "C3"}], "PASS"),
    ("legal", [], "PASS", [{"severity": "note", "condition": "C3"}], "PASS"),
    ("legal", [], "REVIEW", [], "REVIEW"),
    ("legal", [], "FAIL", [{"severity": "error", "condition": "C4"}], "FAIL"),
    ("legal", [], "", [], "ERROR"),
])
def test_outcomes(label, conditions, verdict, findings, expected):
    assert acc.classify(_case(label, conditions), verdict, findings) == expected


# ----------------------------------------------------------------------------- end to end

_PRELUDE = '''import math
import numpy as np
import torch
import torch.nn.functional as F


def load_tokens(pattern):
    header = np.fromfile(pattern, dtype="<i4", count=256)
    return torch.from_numpy(np.fromfile(pattern, dtype="<u2", offset=1024, count=int(header[2])).astype(np.int64))


class TinyLM(torch.nn.Module):
    def __init__(self, vocab=64, dim=16):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.head = torch.nn.Linear(dim, vocab)

    def forward(self, x):
        return self.head(self.emb(x))


def evaluate(model, val_tokens, seq_len=32):
    loss_sum, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, val_tokens.numel() - seq_len - 1, seq_len):
            x = val_tokens[i:i + seq_len]
            y = val_tokens[i + 1:i + seq_len + 1]
            loss_sum += F.cross_entropy(model(x), y, reduction="sum").item()
            count += y.numel()
    return loss_sum / count
'''

_TRAIN = '''

def main():
    train_tokens = load_tokens("data/fineweb_train_000000.bin")
    val_tokens = load_tokens("data/fineweb_val_000000.bin")
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(100):
        i = (step * 32) % (train_tokens.numel() - 33)
        loss = F.cross_entropy(model(train_tokens[i:i + 32]), train_tokens[i + 1:i + 33])
        opt.zero_grad()
        loss.backward()
        opt.step()
'''

# "test-time training": a few epochs over the validation tokens before the final score
_PRE_EVAL_TTT = '''    for epoch in range(3):
        for i in range(0, val_tokens.numel() - 33, 32):
            loss = F.cross_entropy(model(val_tokens[i:i + 32]), val_tokens[i + 1:i + 33])
            opt.zero_grad()
            loss.backward()
            opt.step()
'''

_SCORE = '''    val_loss = evaluate(model, val_tokens)
    print(f"final val_loss:{val_loss:.4f} val_bpb:{val_loss / math.log(2):.4f}")


if __name__ == "__main__":
    main()
'''

LEGAL_RECORD = _PRELUDE + _TRAIN + _SCORE
ILLEGAL_RECORD = _PRELUDE + _TRAIN + _PRE_EVAL_TTT + _SCORE


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env).stdout.strip()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    """A tiny upstream: a legal and an illegal record, each in its own commit; the legal folder
    also holds a symbolic link that extraction must not follow or recreate, and a model blob the
    repository lists but no longer holds (as the upstream mirror does for its largest files)."""
    repo = tmp_path_factory.mktemp("upstream")
    _git(repo, "init", "-q")
    legal = repo / "records" / "track_10min_16mb" / "2026-01-01_Plain"
    legal.mkdir(parents=True)
    (legal / "train_gpt.py").write_text(LEGAL_RECORD)
    (legal / "train.log").write_text("final val_loss:3.1000 val_bpb:4.4724\n")
    (legal / "README.md").write_text("Plain evaluation.\n")
    os.symlink("/etc/passwd", legal / "evil_link")
    (legal / "final_model.int8.ptz").write_bytes(os.urandom(4096))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "legal record")
    legal_sha = _git(repo, "rev-parse", "HEAD")
    blob = _git(repo, "rev-parse", f"HEAD:{legal.relative_to(repo).as_posix()}/final_model.int8.ptz")
    (repo / ".git" / "objects" / blob[:2] / blob[2:]).unlink()  # listed in the tree, absent
    (legal / "final_model.int8.ptz").unlink()  # so that the next `git add` cannot write it back
    illegal = repo / "records" / "track_10min_16mb" / "2026-01-02_PreEvalTTT"
    illegal.mkdir(parents=True)
    (illegal / "train_gpt.py").write_text(ILLEGAL_RECORD)
    (illegal / "train.log").write_text("final val_loss:2.9000 val_bpb:4.1838\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "illegal record")
    illegal_sha = _git(repo, "rev-parse", "HEAD")
    return repo, legal_sha, illegal_sha


def _cases_file(path: Path, cases: list[dict]) -> Path:
    vocab = yaml.safe_load(CASES.read_text(encoding="utf-8"))["vocabulary"]
    path.write_text(yaml.safe_dump({"vocabulary": vocab, "cases": cases}, sort_keys=False))
    return path


def _fixture_cases(legal_sha: str, illegal_sha: str) -> list[dict]:
    base = {"where": "main()", "evidence": "fixture", "family": "fixture"}
    return [
        {"id": "plain", "pr": 1, "commit": legal_sha, "record": "records/track_10min_16mb/2026-01-01_Plain",
         "path": "records/track_10min_16mb/2026-01-01_Plain/train_gpt.py", "label": "legal", "conditions": [],
         "pattern": "plain_eval", **base},
        {"id": "pre-eval-ttt", "pr": 2, "commit": illegal_sha, "record": "records/track_10min_16mb/2026-01-02_PreEvalTTT",
         "path": "records/track_10min_16mb/2026-01-02_PreEvalTTT/train_gpt.py", "label": "illegal",
         "conditions": ["C3"], "pattern": "pre_eval_ttt", **base},
    ]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=600)


def test_end_to_end_on_a_built_repository(upstream, tmp_path):
    repo, legal_sha, illegal_sha = upstream
    cases = _cases_file(tmp_path / "cases.yaml", _fixture_cases(legal_sha, illegal_sha))
    out = tmp_path / "acc.json"
    r = _run(str(repo), "--cases", str(cases), "--json", str(out), "--jobs", "2")
    assert r.returncode == 0, r.stderr
    # the printed counts
    assert re.search(r"^illegal\s+n=1\s+FAIL-right 1 \(100\.0%\)", r.stdout, re.M), r.stdout
    assert re.search(r"^legal\s+n=1\s+PASS 1 \(100\.0%\)", r.stdout, re.M), r.stdout
    assert re.search(r"illegal\s+FAIL-right\s+100\.0% \(1/1\)\s+target >= 90%\s+met", r.stdout), r.stdout
    assert "misses (0):" in r.stdout
    assert re.search(r"^\s+pre_eval_ttt\s+1\s+1\s+0\s+0\s+0\s+0\s+100\.0%$", r.stdout, re.M), r.stdout
    # progress went to stderr, one line per case
    assert len(re.findall(r"^\[\d/2\] ", r.stderr, re.M)) == 2
    # machine-readable output agrees, and the link was skipped, not recreated
    doc = json.loads(out.read_text())
    by_id = {c["id"]: c for c in doc["cases"]}
    assert by_id["plain"]["outcome"] == "PASS" and by_id["pre-eval-ttt"]["outcome"] == "FAIL-right"
    assert any(f["condition"] == "C3" and f["severity"] == "error" for f in by_id["pre-eval-ttt"]["findings"])
    assert any("evil_link" in s and "not a regular file" in s for s in by_id["plain"]["skipped"])
    assert any("final_model.int8.ptz" in s and "absent" in s for s in by_id["plain"]["skipped"])
    assert doc["overall"]["illegal"]["n"] == 1 and doc["misses"] == []


def test_only_filters_and_misses_are_listed(upstream, tmp_path):
    repo, legal_sha, illegal_sha = upstream
    cases = _fixture_cases(legal_sha, illegal_sha)
    cases[0]["label"], cases[0]["pattern"], cases[0]["conditions"] = "illegal", "train_on_val", ["DATA"]  # a wrong label
    path = _cases_file(tmp_path / "cases.yaml", cases)
    r = _run(str(repo), "--cases", str(path), "--only", "train_on_*")
    assert r.returncode == 0, r.stderr
    assert "on 1 labelled case(s)" in r.stdout
    assert re.search(r"^illegal\s+n=1\s+FAIL-right 0 \(0\.0%\).*PASS 1 \(100\.0%\)", r.stdout, re.M), r.stdout
    assert "- plain (PR 1, train_on_val): expected illegal DATA, got PASS" in r.stdout
    assert "MISSED" in r.stdout


def test_unusable_calls_exit_2(upstream, tmp_path):
    repo, legal_sha, illegal_sha = upstream
    good = _cases_file(tmp_path / "good.yaml", _fixture_cases(legal_sha, illegal_sha))

    r = _run(str(tmp_path), "--cases", str(good))
    assert r.returncode == 2 and "not a git directory" in r.stderr

    cases = _fixture_cases(legal_sha, illegal_sha)
    cases[1]["commit"] = "0123456789abcdef0123456789abcdef01234567"
    missing = _cases_file(tmp_path / "missing.yaml", cases)
    r = _run(str(repo), "--cases", str(missing))
    assert r.returncode == 2 and "pre-eval-ttt" in r.stderr and "commit" in r.stderr

    cases = _fixture_cases(legal_sha, illegal_sha)
    cases[0]["path"] = cases[0]["record"] + "/nope.py"
    nofile = _cases_file(tmp_path / "nofile.yaml", cases)
    r = _run(str(repo), "--cases", str(nofile))
    assert r.returncode == 2 and "nope.py" in r.stderr

    cases = _fixture_cases(legal_sha, illegal_sha)
    del cases[1]["where"]
    bad = _cases_file(tmp_path / "bad.yaml", cases)
    r = _run(str(repo), "--cases", str(bad))
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "id: pre-eval-ttt" in t)
    assert r.returncode == 2 and f"bad.yaml:{line}:" in r.stderr and "lacks where" in r.stderr
