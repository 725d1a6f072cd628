"""`pgolf gate` on real git repositories made in the test: the shape of a PR, then check + audit,
the report a PR author reads (path:line, why, fix), and the GitHub Action around it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gate_support import (ILLEGAL, LEGAL, NON_RECORD, RECORD, REPO_ROOT, TRACK, base_repo, commit, git, pr_repo,
                          write_record)
from harness.cli import main
from harness.gate import FOLDER_RE, GATE_RULES, NOTHING_TO_GATE, AllowList, shape_of


def gate(capsys, repo: Path, *extra: str, fmt: str = "json"):
    rc = main(["gate", "--repo", str(repo), "--base", "main", "--head", "pr", "--format", fmt, *extra])
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if fmt == "json" else out), err


def ids(doc: dict) -> list[str]:
    out = [f["id"] for f in doc["findings"]]
    for c in doc.get("children", []):
        out += ids(c)
    return out


# -- the shape rules, as examples ------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes, existing, expect, nothing",
    [
        ([("A", f"{TRACK}/2026-05-01_X/train_gpt.py")], set(), [], False),
        ([("A", f"{TRACK}/2026-05-01_X/a.py"), ("A", f"{TRACK}/2026-05-02_Y/b.py")], set(), ["PG-GATE-001"], False),
        ([("A", f"{TRACK}/myrecord/train_gpt.py")], set(), ["PG-GATE-002"], False),
        ([("A", "records/track_fast/2026-05-01_X/train_gpt.py")], set(), ["PG-GATE-007"], False),
        ([("A", f"{TRACK}/2026-05-01_X/train_gpt.py"), ("M", "README.md")], set(), ["PG-GATE-004"], False),
        ([("A", f"{TRACK}/2026-05-01_X/train_gpt.py"), ("D", f"{TRACK}/2026-04-01_Old/README.md")],
         {f"{TRACK}/2026-04-01_Old"}, ["PG-GATE-004"], False),
        # editing a merged record is not a new record; alone, it is nothing to gate
        ([("A", f"{TRACK}/2026-04-01_Old/extra.log")], {f"{TRACK}/2026-04-01_Old"}, [], True),
        ([("M", "train_gpt.py")], set(), [], True),
    ],
)
def test_shape_rules_examples(changes, existing, expect, nothing):
    shape = shape_of(changes, existing)
    assert sorted(f.rule_id for f in shape.findings) == expect
    assert shape.nothing_to_gate is nothing


def test_every_gate_rule_has_an_id_a_message_and_a_fix():
    assert len({r.rule_id for r in GATE_RULES}) == len(GATE_RULES)
    for r in GATE_RULES:
        assert r.rule_id.startswith("PG-GATE-") and r.message
    assert all(r.hint for r in GATE_RULES if r.rule_id != "PG-GATE-004")  # 004's fix depends on the change


def test_allow_list_patterns():
    allow = AllowList.parse("# reviewer-owned\n.github/workflows/*\nscripts/\n", "x")
    assert allow.permits(".github/workflows/ci.yml") and allow.permits("scripts/a/b.py")
    assert not allow.permits("README.md") and not allow.permits(".github/CODEOWNERS")


def test_folder_name_pattern():
    assert FOLDER_RE.match("2026-04-09_A2_Muon097_3Seed")
    assert not FOLDER_RE.match("A2_Muon097")


# -- whole PRs -------------------------------------------------------------------------------------
def test_gate_passes_a_clean_pr(tmp_path, capsys):
    repo, folder = pr_repo(tmp_path)
    rc, out, _ = gate(capsys, repo)
    assert rc == 0, out
    assert out["verdict"] == "PASS" and out["subject"] == folder
    assert [c["kind"] for c in out["children"]] == ["record"]
    assert [c["kind"] for c in out["children"][0]["children"]] == ["check", "audit"]
    assert out["children"][0]["data"]["files"]["train_seed42.log"] == "log"


def test_gate_fails_illegal_code_and_outside_change_with_reasons(tmp_path, capsys):
    repo = base_repo(tmp_path)
    write_record(repo / TRACK / "2026-05-01_Bad", ILLEGAL)
    (repo / "README.md").write_text("changed\n")
    commit(repo, "pr")
    rc, out, _ = gate(capsys, repo)
    assert rc == 1 and out["verdict"] == "FAIL"
    outside = [f for f in out["findings"] if f["id"] == "PG-GATE-004"]
    assert len(outside) == 1 and outside[0]["severity"] == "error" and "(changed)" in outside[0]["message"]
    assert outside[0]["data"]["hint"].startswith("drop the change to README.md")
    audit = [c for c in out["children"][0]["children"] if c["kind"] == "audit"][0]
    assert audit["verdict"] == "FAIL"
    # the PR comment: the audit finding with its line relative to the record, why and a fix
    rc, md, _ = gate(capsys, repo, fmt="markdown")
    assert md.startswith("## pgolf gate: `2026-05-01_Bad` — FAIL")
    assert "- **PG-C3-002** `train_gpt.py:19` — " in md
    assert "**fix:** score every validation token before any update" in md
    assert "- **PG-GATE-004** `README.md` — " in md and "**fix:** drop the change to README.md" in md
    assert "<details><summary>" in md  # notes and tables folded
    rc, text, _ = gate(capsys, repo, fmt="text")
    assert "  train_gpt.py:19: PG-C3-002 " in text and "      fix: drop the change to README.md" in text


@pytest.mark.parametrize("edit, status", [
    (lambda r: (r / ".github" / "workflows" / "ci.yml").write_text("on: pull_request_target\n"), "changed"),
    (lambda r: shutil.rmtree(r / TRACK / "2026-04-01_Merged"), "deleted"),
    (lambda r: (r / "scripts").mkdir() or (r / "scripts" / "x.sh").write_text("curl evil\n"), "added"),
])
def test_changes_outside_the_record_fail_and_say_what(tmp_path, capsys, edit, status):
    repo = base_repo(tmp_path)
    write_record(repo / TRACK / "2026-05-01_New")
    edit(repo)
    commit(repo, "pr")
    rc, out, _ = gate(capsys, repo)
    assert rc == 1
    hits = [f for f in out["findings"] if f["id"] == "PG-GATE-004"]
    assert hits and all(f["severity"] == "error" and f"({status})" in f["message"] for f in hits)
    assert all(f["data"]["hint"] for f in hits)


def test_reviewer_allow_list_permits_a_path_and_is_never_read_from_the_pr(tmp_path, capsys):
    repo = base_repo(tmp_path)
    (repo / "allow.txt").write_text(".github/workflows/*\n")  # on main: the reviewer's side
    commit(repo, "allow-list on main")
    git(repo, "branch", "-f", "main", "pr")
    write_record(repo / TRACK / "2026-05-01_New")
    (repo / ".github" / "workflows" / "ci.yml").write_text("on: [push, pull_request]\n")
    (repo / "allow.txt").write_text("*\n")  # the PR widening the allow-list changes nothing
    commit(repo, "pr")
    rc, out, _ = gate(capsys, repo, "--allow-from-base", "allow.txt")
    assert [f["message"] for f in out["findings"]] == [
        "the PR changes files outside its record folder: allow.txt (changed)"]
    outside = tmp_path / "reviewer-allow.txt"
    outside.write_text(".github/workflows/*\nallow.txt\n")
    rc, out, _ = gate(capsys, repo, "--allow", str(outside))
    assert rc == 0 and out["verdict"] == "PASS"
    rc, _, err = gate(capsys, repo, "--allow", str(repo / "allow.txt"), fmt="text")
    assert rc == 2 and "inside the PR's checkout" in err


def test_a_pr_that_adds_no_record_is_neutral(tmp_path, capsys):
    repo = base_repo(tmp_path)
    (repo / "README.md").write_text("typo fixed\n")
    (repo / TRACK / "2026-04-01_Merged" / "notes.md").write_text("an edit to a merged record\n")
    commit(repo, "pr")
    rc, text, _ = gate(capsys, repo, fmt="text")
    assert rc == 0
    assert text.startswith(NOTHING_TO_GATE) and len(text.splitlines()) == 1
    rc, doc, _ = gate(capsys, repo)
    assert rc == 0 and doc["data"]["nothing_to_gate"] is True and doc["findings"] == []


def test_editing_a_merged_record_is_not_that_record_being_new(tmp_path, capsys):
    repo = base_repo(tmp_path)
    write_record(repo / TRACK / "2026-05-01_New")
    (repo / TRACK / "2026-04-01_Merged" / "train_seed42.log").write_text("rewritten\n")
    commit(repo, "pr")
    rc, out, _ = gate(capsys, repo)
    assert rc == 1 and out["data"]["records"] == [f"{TRACK}/2026-05-01_New"]
    hit = [f for f in out["findings"] if f["id"] == "PG-GATE-004"][0]
    assert "2026-04-01_Merged/train_seed42.log (changed)" in hit["message"]


def test_every_added_folder_is_gated_and_non_ascii_names_work(tmp_path, capsys):
    repo = base_repo(tmp_path)
    write_record(repo / TRACK / "2026-05-01_Müon")
    commit(repo, "one folder")
    rc, out, _ = gate(capsys, repo)
    assert rc == 0 and out["subject"] == f"{TRACK}/2026-05-01_Müon", out
    write_record(repo / TRACK / "2026-05-02_Évil", ILLEGAL)
    commit(repo, "a second folder")
    rc, out, _ = gate(capsys, repo)
    assert rc == 1 and [f["id"] for f in out["findings"]] == ["PG-GATE-001"]
    assert out["data"]["records"] == [f"{TRACK}/2026-05-01_Müon", f"{TRACK}/2026-05-02_Évil"]
    parts = {c["subject"]: c for c in out["children"]}
    assert parts[f"{TRACK}/2026-05-02_Évil"]["verdict"] == "FAIL"  # checked and audited too
    assert [c["kind"] for c in parts[f"{TRACK}/2026-05-01_Müon"]["children"]] == ["check", "audit"]
    assert out["findings"][0]["data"]["hint"].startswith("split the PR")


def test_head_ref_is_read_from_git_not_the_working_tree(tmp_path, capsys):
    repo, folder = pr_repo(tmp_path, code=ILLEGAL)
    git(repo, "checkout", "-q", "main")
    assert not (repo / folder).exists()  # main is checked out: the record is only in git
    rc, out, _ = gate(capsys, repo)
    assert rc == 1 and out["subject"] == folder
    # a working tree that differs from the ref changes nothing either
    git(repo, "checkout", "-q", "pr")
    (repo / folder / "train_gpt.py").write_text((LEGAL).read_text())
    rc2, out2, _ = gate(capsys, repo)
    assert rc2 == 1 and out2["verdict"] == "FAIL"


def test_a_symlink_in_the_tree_is_an_error_and_never_read(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PGOLF_TEST_CANARY", "CANARY_c0ffee_gate")
    secret = tmp_path / "secret.txt"
    secret.write_text("CANARY_c0ffee_gate\n")
    repo = base_repo(tmp_path)
    folder = repo / TRACK / "2026-05-01_Links"
    write_record(folder)
    os.symlink("/proc/self/environ", folder / "train_seed7.log")
    os.symlink(secret, folder / "notes.md")
    os.symlink(str(tmp_path), folder / "logs")
    commit(repo, "pr")
    assert "120000" in git(repo, "ls-tree", "pr", f"{TRACK}/2026-05-01_Links/logs")
    for fmt in ("json", "text", "markdown", "sarif"):
        rc, out, err = gate(capsys, repo, fmt=fmt)
        raw = json.dumps(out) if fmt == "json" else out
        assert rc == 1
        assert "CANARY_c0ffee_gate" not in raw + err and str(tmp_path) not in raw and "/proc/self" not in raw
    rc, out, _ = gate(capsys, repo)
    links = [f for f in out["children"][0]["findings"] if f["id"] == "PG-GATE-006"]
    assert links and links[0]["severity"] == "error"
    assert set(links[0]["data"]["paths"]) == {"logs", "notes.md", "train_seed7.log"}


def test_non_record_track_freedoms_come_from_its_ruleset(tmp_path, capsys):
    repo = base_repo(tmp_path)
    study = repo / NON_RECORD / "2026-05-01_Study"
    (study / "logs").mkdir(parents=True)
    shutil.copy(LEGAL, study / "train_mamba3_hybrid.py")
    (study / "README.md").write_text("# a study\n")
    (study / "requirements.txt").write_text("torch\n")
    commit(repo, "study without logs or submission.json")
    rc, out, _ = gate(capsys, repo)
    assert rc == 0, out  # no logs, no submission.json: warnings on this track
    req = [f for f in out["children"][0]["findings"] if f["id"] == "PG-GATE-003"]
    assert [f["severity"] for f in req] == ["warning"] and req[0]["data"]["missing"] == ["submission", "log"]
    shutil.copy(RECORD / "submission.json", study / "submission.json")
    assert out["children"][0]["data"]["files"] == {} or "requirements.txt" not in [
        k for k, v in out["children"][0]["data"]["files"].items() if v == "log"]
    for log in RECORD.glob("train_seed*.log"):
        shutil.copy(log, study / "logs" / (log.stem + ".txt"))
    commit(repo, ".txt logs in logs/")
    rc, out, _ = gate(capsys, repo)
    files = out["children"][0]["data"]["files"]
    assert rc == 0 and "PG-GATE-003" not in ids(out)
    assert files["logs/train_seed42.txt"] == "log" and files["requirements.txt"] == "other"
    assert files["train_mamba3_hybrid.py"] == "entry"


def test_record_track_accepts_what_check_accepts(tmp_path, capsys):
    repo = base_repo(tmp_path)
    rec = repo / TRACK / "2026-05-01_Names"
    write_record(rec)
    (rec / "submission.json").rename(rec / "submission_ternary.json")
    (rec / "logs").mkdir()
    for log in rec.glob("train_seed*.log"):
        log.rename(rec / "logs" / (log.stem + ".txt"))
    commit(repo, "pr")
    rc, out, _ = gate(capsys, repo)
    assert "PG-GATE-003" not in ids(out), out
    assert out["children"][0]["data"]["files"]["submission_ternary.json"] == "submission"


def test_gate_missing_files(tmp_path, capsys):
    folder = tmp_path / "2026-05-01_Bare"
    shutil.copytree(RECORD, folder)
    rc = main(["gate", str(folder), "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    req = [f for f in out["children"][0]["findings"] if f["id"] == "PG-GATE-003"]
    assert len(req) == 1 and "README.md" in req[0]["message"] and "train_gpt.py" in req[0]["message"]
    assert req[0]["location"]["path"] == str(folder)


def test_gate_bad_ref_is_input_error(tmp_path, capsys):
    repo, _ = pr_repo(tmp_path)
    rc = main(["gate", "--repo", str(repo), "--base", "no-such-ref"])
    assert rc == 2
    assert "no-such-ref" in capsys.readouterr().err


# -- the GitHub Action -----------------------------------------------------------------------------
def run_action(repo: Path, tmp_path: Path, **extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run the action's script as action.yml does (`python -m harness.github_action`, from a
    folder outside the checkout) with the variables GitHub Actions sets."""
    runner_temp = tmp_path / f"runner_temp{len(list(tmp_path.glob('runner_temp*')))}"
    runner_temp.mkdir()
    git(repo, "update-ref", "refs/remotes/origin/main", "main")  # what a fetch-depth: 0 checkout has
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "PGOLF_"))}
    env.update(GITHUB_ACTIONS="true", GITHUB_EVENT_NAME="pull_request", GITHUB_WORKSPACE=str(repo),
               GITHUB_BASE_REF="main", GITHUB_HEAD_REF="pr", RUNNER_TEMP=str(runner_temp),
               GITHUB_STEP_SUMMARY=str(runner_temp / "summary.md"), GITHUB_OUTPUT=str(runner_temp / "output.txt"),
               PYTHONPATH=str(REPO_ROOT), **extra)
    # -P: like -I in action.yml, the working directory (here the checkout) is not on sys.path
    done = subprocess.run([sys.executable, "-P", "-m", "harness.github_action"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=300)
    outputs: dict[str, str] = {}
    lines = (runner_temp / "output.txt").read_text().splitlines() if (runner_temp / "output.txt").exists() else []
    i = 0
    while i < len(lines):
        name, _, delim = lines[i].partition("<<")
        j = lines.index(delim, i + 1)
        outputs[name] = "\n".join(lines[i + 1:j])
        i = j + 1
    return done, outputs


def test_action_script_with_github_environment(tmp_path):
    repo = base_repo(tmp_path)
    write_record(repo / TRACK / "2026-05-01_Bad", ILLEGAL)
    (repo / "README.md").write_text("changed\n")
    # a PR-supplied `harness` package must never be imported by the action
    (repo / "harness").mkdir()
    (repo / "harness" / "__init__.py").write_text(f"open({str(tmp_path / 'PWNED')!r}, 'w')\n")
    commit(repo, "pr")
    git(repo, "checkout", "-q", "main")  # the action reads PGOLF_HEAD / HEAD from git either way
    done, outputs = run_action(repo, tmp_path, PGOLF_HEAD="pr")
    assert done.returncode == 1, done.stderr
    assert not (tmp_path / "PWNED").exists()
    assert outputs["verdict"] == "FAIL" and outputs["exit-code"] == "1"
    summary = (tmp_path / "runner_temp0" / "summary.md").read_text()
    assert summary.startswith("## pgolf gate: `2026-05-01_Bad` — FAIL") and "`train_gpt.py:19`" in summary
    annotations = [ln for ln in done.stdout.splitlines() if ln.startswith("::")]
    assert f"::error file=records/track_10min_16mb/2026-05-01_Bad/train_gpt.py,line=19,title=PG-C3-002::" in "\n".join(annotations)
    assert any(a.startswith("::error file=README.md,title=PG-GATE-004::") for a in annotations)
    sarif = json.loads(Path(outputs["sarif"]).read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]
    assert json.loads(Path(outputs["json"]).read_text())["verdict"] == "FAIL"


def test_action_nothing_to_gate_and_bad_base(tmp_path):
    repo = base_repo(tmp_path)
    (repo / "README.md").write_text("docs\n")
    commit(repo, "docs only")
    done, outputs = run_action(repo, tmp_path)
    assert done.returncode == 0 and outputs["verdict"] == "nothing-to-gate"
    assert NOTHING_TO_GATE in done.stdout
    done, outputs = run_action(repo, tmp_path, PGOLF_BASE="no-such-branch")
    assert done.returncode == 2 and outputs["verdict"] == "unusable"
    assert done.stdout.startswith("::error title=pgolf gate::") and len(done.stdout.splitlines()) == 1


def test_action_yml_runs_nothing_from_the_checkout():
    import yaml

    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    steps = action["runs"]["steps"]
    runs = [s for s in steps if "run" in s]
    assert all(s["working-directory"] == "${{ runner.temp }}" for s in runs)
    assert all(ln.startswith("python -I ") for s in runs for ln in s["run"].strip().splitlines())
    assert "python -I -m harness.github_action" in runs[-1]["run"]
    flow = yaml.safe_load((REPO_ROOT / "examples" / "upstream" / "pgolf-gate.yml").read_text())
    assert flow["permissions"] == {"contents": "read"} and "pull_request" in flow[True]
    checkout = flow["jobs"]["gate"]["steps"][0]
    assert checkout["with"]["persist-credentials"] is False and "secrets" not in json.dumps(flow)


def test_every_check_rule_has_a_fix_for_the_pr_comment():
    """The PR comment shows a fix under every finding: a check rule added without one would show
    none (four did, before this test)."""
    from harness.checks.registry import RULES
    from harness.report.hints import rule_fix

    assert sorted(r for r in RULES if not rule_fix(r)) == []


def test_git_and_folder_snapshots_extract_alike(tmp_path):
    """One extraction for both sources: folders are made as listed (a folder holding only a link
    too), each file's cap is never more than what is left of the total, and every code file not
    extracted is reported as not audited."""
    from harness.gate import ExtractCaps, snapshot_from_folder, snapshot_from_git

    repo = base_repo(tmp_path)
    folder = f"{TRACK}/2026-05-01_Budget"
    write_record(repo / folder)
    for name in ("helper_a.py", "helper_b.py"):
        (repo / folder / name).write_text("x = 1\n" * 500)  # 3,000 bytes each
    (repo / folder / "extra").mkdir()
    os.symlink("../README.md", repo / folder / "extra" / "x")
    commit(repo, "pr")
    caps = ExtractCaps(total=4000)
    snaps = [snapshot_from_git(repo, "pr", folder, tmp_path / "g", caps),
             snapshot_from_folder(repo / folder, tmp_path / "f", caps)]
    for snap in snaps:
        got = sorted(str(p.relative_to(snap.folder)) for p in snap.folder.rglob("*") if p.is_file())
        assert got == ["README.md", "helper_a.py", "submission.json"], got
        assert (snap.folder / "extra").is_dir() and not (snap.folder / "extra" / "x").exists()
        refused = sorted(f.location.path.rsplit("/", 1)[-1] for f in snap.findings if f.rule_id == "PG-INPUT-003")
        assert refused == ["helper_b.py", "train_gpt.py"]
        assert snap.track == "track_10min_16mb"


def test_gate_of_a_relative_folder_knows_its_track(tmp_path, capsys, monkeypatch):
    """`pgolf gate 2026-05-01_Study` run inside records/track_non_record_16mb: the track comes
    from the folder's real path, so the study's missing logs are warnings, not errors."""
    track = tmp_path / NON_RECORD
    study = track / "2026-05-01_Study"
    study.mkdir(parents=True)
    shutil.copy(LEGAL, study / "train_gpt.py")
    (study / "README.md").write_text("# a study\n")
    monkeypatch.chdir(track)
    rc = main(["gate", "2026-05-01_Study", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    part = out["children"][0]
    req = [f for f in part["findings"] if f["id"] == "PG-GATE-003"]
    assert part["data"]["track"] == "track_non_record_16mb"
    assert rc == 0 and [f["severity"] for f in req] == ["warning"], req


def test_links_are_reported_once_when_no_log_is_readable(tmp_path, capsys):
    """Every log is a link: the record loads no train log, and each link is still one finding,
    the gate's PG-GATE-006 error, not also the loader's PG-INPUT-002 warning."""
    repo = base_repo(tmp_path)
    folder = repo / TRACK / "2026-05-01_OnlyLinks"
    write_record(folder)
    for log in folder.glob("train_seed*.log"):
        log.unlink()
        os.symlink("/proc/self/environ", log)
    commit(repo, "pr")
    rc, out, _ = gate(capsys, repo)
    found = ids(out)
    assert rc == 1 and found.count("PG-GATE-006") == 1 and "PG-INPUT-002" not in found, found


def test_sarif_help_is_the_fix_the_pr_comment_shows(tmp_path, capsys):
    """SARIF `help` and the PR comment's fix read one lookup: a gate rule (PG-GATE-003) and an
    audit rule (PG-C3-002, its area's fix) carry help in SARIF too."""
    from harness.report.hints import rule_fix

    repo = base_repo(tmp_path)
    folder = write_record(repo / TRACK / "2026-05-01_Bad", ILLEGAL)
    (folder / "README.md").unlink()
    commit(repo, "pr")
    rc, sarif, _ = gate(capsys, repo, fmt="sarif")
    rules = {r["id"]: r for r in json.loads(sarif)["runs"][0]["tool"]["driver"]["rules"]}
    assert {"PG-GATE-003", "PG-C3-002"} <= set(rules)
    for rid in ("PG-GATE-003", "PG-C3-002"):
        assert rules[rid]["help"]["text"] == rule_fix(rid)
    assert rules["PG-C3-002"]["help"]["text"].startswith("score every validation token before any update")
    assert rules["PG-GATE-003"]["help"]["text"] == "add the missing files to the record folder"


def test_action_installs_the_gate_extra_and_declares_its_outputs():
    """The action installs pgolf with --no-deps and then the `gate` extra of pyproject.toml (read
    from the installed metadata), so the payload decoders the audit imports lazily (zstandard,
    brotli: audit/static/decompress.py) are there; every output github_action writes is declared."""
    import re

    import yaml

    tomllib = pytest.importorskip("tomllib")
    from harness.github_action import requirements

    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    gate_extra = project["optional-dependencies"]["gate"]
    name = lambda req: re.split(r"[<>=!~ ]", req, maxsplit=1)[0]  # noqa: E731
    assert {"libcst", "pyyaml", "rich", "zstandard", "brotli"} <= {name(r) for r in gate_extra}
    assert set(gate_extra) <= set(project["dependencies"])  # the same pins as a full install
    dist = [*project["dependencies"], *(f'{r}; extra == "gate"' for r in gate_extra), 'pytest>=8.0; extra == "test"']
    assert requirements(dist) == gate_extra
    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    install = action["runs"]["steps"][1]["run"]
    assert "--no-deps" in install and "$(python -I -m harness.github_action --requirements)" in install
    assert set(action["outputs"]) == {"verdict", "exit-code", "sarif", "json"}
