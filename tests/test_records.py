"""harness.records: a record folder (or a plain folder of logs) read loosely, errors named."""
from __future__ import annotations

import json
import os

import pytest

from check_support import FIX, copy_record, edit, log
from harness.errors import InputError
from harness.records import load_record, seed_from_filename


def test_fixture_record_loads_with_seeds_and_unknown_fields(tmp_path):
    rec = load_record(copy_record(tmp_path))
    assert rec.seeds == [42, 1337, 2025]
    assert {lf.seed_source for lf in rec.logs} == {"log"}
    assert rec.submission["hardware"] == "8xH100 80GB SXM"  # unknown fields are kept
    assert rec.track == "track_10min_16mb" and rec.track_source == "submission.json"
    assert rec.submission_line("bytes_total") == 9
    assert rec.by_seed[42][0].run.bytes_total.bytes == 15984850


def test_track_from_folder_beats_submission(tmp_path):
    rec = load_record(copy_record(tmp_path / "track_non_record_16mb"))
    assert rec.track == "track_non_record_16mb" and rec.track_source == "folder"


def test_plain_folder_of_logs_without_submission(tmp_path):
    d = tmp_path / "repro"
    d.mkdir()
    (d / "seed_7.log").write_text((FIX / "ttt_done_elapsed.log").read_text())
    rec = load_record(d)
    assert rec.submission == {} and rec.submission_path is None and rec.track is None
    assert rec.logs[0].seed == 2025 and rec.logs[0].filename_seed == 7


def test_missing_folder(tmp_path):
    with pytest.raises(InputError) as e:
        load_record(tmp_path / "nope")
    assert e.value.path.endswith("nope") and "no such record folder" in str(e.value)


def test_no_logs(tmp_path):
    (tmp_path / "submission.json").write_text("{}")
    (tmp_path / "requirements.txt").write_text("torch\n")
    (tmp_path / "notes.txt").write_text("just notes, no training here\n")
    with pytest.raises(InputError, match="no train logs"):
        load_record(tmp_path)


def test_bad_json_names_file_and_line(tmp_path):
    rec = copy_record(tmp_path)
    edit(rec / "submission.json", '"bytes_total": 15984850,', '"bytes_total": 15984850,,')
    with pytest.raises(InputError) as e:
        load_record(rec)
    assert e.value.path.endswith("submission.json") and e.value.line == 9
    assert str(e.value).startswith(f"{rec / 'submission.json'}:9: invalid JSON")


def test_json_that_is_not_an_object(tmp_path):
    rec = copy_record(tmp_path)
    (rec / "submission.json").write_text(json.dumps([1, 2]))
    with pytest.raises(InputError, match="expected a JSON object"):
        load_record(rec)


def test_txt_logs_only_when_they_read_like_train_logs(tmp_path):
    rec = copy_record(tmp_path)
    (rec / "notes.txt").write_text("seed 42 was the best one\n")
    (rec / "logs").mkdir()
    (rec / "logs" / "train0.txt").write_text((FIX / "new_format_phased_ttt.log").read_text())
    (rec / "broken.log").write_bytes(b"\xff\xfe not a log at all\n")
    loaded = load_record(rec)
    names = sorted(lf.rel.split("/record/")[1] for lf in loaded.logs)
    assert names == ["broken.log", "logs/train0.txt", "train_seed1337.log", "train_seed2025.log", "train_seed42.log"]
    broken = [lf for lf in loaded.logs if lf.rel.endswith("broken.log")][0]
    assert broken.seed is None and broken.run.decode_errors == 2


def test_filename_seed_when_the_log_prints_none_or_an_unclaimed_one(tmp_path):
    rec = copy_record(tmp_path)
    edit(log(rec, 42), "seed:42\n", "")
    edit(log(rec, 2025), "seed:2025\n", "seed:7\n")  # a fork that ignores SEED; 7 is not claimed, 2025 is
    loaded = load_record(rec)
    by_name = {lf.path.name: lf for lf in loaded.logs}
    assert (by_name["train_seed42.log"].seed, by_name["train_seed42.log"].seed_source) == (42, "filename")
    assert (by_name["train_seed2025.log"].seed, by_name["train_seed2025.log"].seed_source) == (2025, "filename")


def test_code_files_are_listed_never_run(tmp_path):
    rec = copy_record(tmp_path)
    marker = tmp_path / "ran"
    (rec / "train_gpt.py").write_text(f"open({str(marker)!r}, 'w').write('x')\nraise SystemExit(3)\n")
    loaded = load_record(rec)
    assert loaded.code_files == {"train_gpt.py": (rec / "train_gpt.py").stat().st_size}
    assert not marker.exists()


@pytest.mark.parametrize("name,seed", [
    ("train_seed42.log", 42), ("train_seed_2026.txt", 2026), ("log_10mins_seed-7.txt", 7),
    ("ternary_log_1337.txt", 1337), ("hybrid_gdn_1xh100_600s_seq32768_s42.txt", 42), ("train.log", None),
    ("train_v1.txt", None), ("train_seed1234_rerun_gptq8s.log", 1234),
])
def test_seed_from_filename(name, seed):
    assert seed_from_filename(name) == seed


def test_every_corpus_folder_loads_or_says_why(corpus):
    folders = sorted(d for t in corpus.glob("track_*") for d in t.iterdir() if d.is_dir())
    assert len(folders) >= 50
    for d in folders:
        try:
            rec = load_record(d)
        except InputError as e:
            assert "no train logs" in str(e), d  # the only reason a merged folder is unusable
            continue
        assert rec.track in ("track_10min_16mb", "track_non_record_16mb")
        assert rec.logs


# -- the inventory: one notion of a record's files, shared by check and gate ---------------------
def test_inventory_gives_every_entry_a_role(tmp_path):
    from harness.records import inventory

    rec = copy_record(tmp_path / "track_non_record_16mb")
    (rec / "README.md").write_text("# r\n")
    (rec / "train_mamba3_hybrid.py").write_text("print(1)\n")
    (rec / "helper.py").write_text("x = 1\n")
    (rec / "requirements.txt").write_text("torch\n")
    (rec / "logs").mkdir()
    (rec / "logs" / "run1.txt").write_text((FIX / "new_format_phased_ttt.log").read_text())
    (rec / "notes.txt").write_text("just notes\n")
    os.symlink(tmp_path, rec / "outside")
    os.mkfifo(rec / "pipe.log")
    roles = {e.rel: e.role for e in load_record(rec).inventory}
    assert roles == {
        "README.md": "readme", "helper.py": "code", "logs": "folder", "logs/run1.txt": "log",
        "notes.txt": "other", "outside": "link", "pipe.log": "special", "requirements.txt": "other",
        "submission.json": "submission", "train_mamba3_hybrid.py": "entry", "train_seed1337.log": "log",
        "train_seed2025.log": "log", "train_seed42.log": "log",
    }
    # before reading, a .txt candidate is a log; requirements.txt never is
    before = {e.rel: e.role for e in inventory(rec)}
    assert before["notes.txt"] == "log" and before["requirements.txt"] == "other"


def test_file_policy_is_read_from_each_tracks_ruleset():
    from harness.records import FilePolicy, file_policy

    record, study = file_policy("track_10min_16mb"), file_policy("track_non_record_16mb")
    assert record.is_entry("train_gpt.py") and record.is_entry("train_gpt_cuda_ternary.py") and record.optional == ()
    assert study.is_entry("train_mamba3_hybrid.py") and study.optional == ("log", "submission")
    assert not record.is_entry("train_mamba3_hybrid.py") and not study.is_entry("sub/train.py")
    assert study.is_log_name("logs/train0.txt") and not study.is_log_name("requirements.txt")
    with pytest.raises(InputError, match="unknown setting"):
        FilePolicy.from_dict({"entries": ["x"]}, "r.yaml")
    with pytest.raises(InputError, match="files.optional"):
        FilePolicy.from_dict({"optional": ["readme", "tests"]}, "r.yaml")


# -- hostile files: links, caps, JSON bounds -------------------------------------------------------
def test_links_are_findings_and_never_read(tmp_path):
    rec = copy_record(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("CANARY_records_7\n")
    os.symlink(secret, rec / "README.md")
    os.symlink("/proc/self/environ", rec / "train_seed7.log")
    os.symlink(tmp_path, rec / "logs")
    loaded = load_record(rec)
    assert loaded.readme is None and sorted(loaded.seeds) == [42, 1337, 2025]
    links = sorted(f.location.path.rsplit("/", 1)[-1] for f in loaded.findings if f.rule_id == "PG-INPUT-002")
    assert links == ["README.md", "logs", "train_seed7.log"]
    assert all(f.severity.value == "warning" for f in loaded.findings)
    assert "CANARY" not in repr(loaded.__dict__)


def test_files_over_their_cap_are_refused_before_reading(tmp_path):
    rec = copy_record(tmp_path)
    with open(rec / "train_seed9.log", "wb") as fh:
        fh.truncate(1 << 30)  # sparse: 1 GB on paper, nothing on disk
    with open(rec / "README.md", "wb") as fh:
        fh.truncate(5 << 20)
    loaded = load_record(rec)
    big = {f.location.path.rsplit("/", 1)[-1]: f for f in loaded.findings if f.rule_id == "PG-INPUT-003"}
    assert set(big) == {"train_seed9.log", "README.md"}
    assert big["train_seed9.log"].undecided and big["train_seed9.log"].data["size"] == 1 << 30
    assert {e.rel: e.role for e in loaded.inventory}["train_seed9.log"] == "too-large"


def test_long_lines_and_floods_are_bounded(tmp_path):
    from harness.logs.parse import MAX_KEPT, MAX_LINE_CHARS

    rec = copy_record(tmp_path)
    lines = [f"step:{i}/99999 train_loss:2.5 train_time:{i}ms" for i in range(MAX_KEPT["steps"] + 500)]
    (rec / "train_seed9.log").write_text("x" * (MAX_LINE_CHARS * 8) + "\n" + "\n".join(lines) + "\n")
    run = [lf for lf in load_record(rec).logs if lf.path.name == "train_seed9.log"][0].run
    assert len(run.steps) == MAX_KEPT["steps"] and run.steps[-1].step == MAX_KEPT["steps"] + 499
    assert run.long_lines == 1 and run.dropped_lines == 500
    assert len(run.unknown[0][1]) == MAX_LINE_CHARS


@pytest.mark.parametrize("text, expect", [
    ('{"val_bpb": NaN, "bytes_total": Infinity}', ["NaN", "Infinity"]),
    ('{"val_bpb": 1e999}', ["1e999"]),
    ('{"seed": ' + "7" * 5000 + "}", ["777777777777…(5000 characters)"]),
])
def test_submission_numbers_json_cannot_carry_are_kept_as_text(tmp_path, text, expect):
    rec = copy_record(tmp_path)
    (rec / "submission.json").write_text(text)
    loaded = load_record(rec)
    odd = [f.message.rsplit(": ", 1)[-1] for f in loaded.findings if f.rule_id == "PG-INPUT-005"]
    assert odd == expect
    assert all(isinstance(v, str) for v in loaded.submission.values())


def test_deeply_nested_submission_is_unusable_input_with_its_line(tmp_path):
    rec = copy_record(tmp_path)
    (rec / "submission.json").write_text('{"a": 1,\n"b": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(InputError, match="nested deeper than 64") as e:
        load_record(rec)
    assert e.value.line == 2
    (rec / "submission.json").write_text('{"a": "' + "[" * 100_000 + '"}')  # brackets in a string: fine
    assert load_record(rec).submission["a"].startswith("[[[")


def test_json_depth_screen_on_an_unclosed_string_of_escaped_quotes():
    """A submission.json of `"` then 500,000 `\\"` never closes its string: the depth screen treats
    the rest of the file as that string (it scanned to the end once per quote before: hours)."""
    from harness.records import json_depth_error

    assert json_depth_error('"' + '\\"' * 500_000) is None
    assert json_depth_error('{"a": "[[[[", "b": ' + "[" * 70 + "]" * 70 + "}") == (65, 1)
    assert json_depth_error('{"a": "x", "b": "' + "[" * 70) is None  # brackets inside the unclosed string


def test_a_record_whose_only_log_is_over_its_cap_says_so(tmp_path):
    """The log was refused, not absent: the error names it, and carries the loader's finding
    (the gate keeps it beside PG-GATE-003)."""
    from harness.records import Caps, NoTrainLogs, load_record

    (tmp_path / "README.md").write_text("# r\n")
    (tmp_path / "submission.json").write_text('{"val_bpb": 1.1}')
    (tmp_path / "train_gpt.py").write_text("print(1)\n")
    (tmp_path / "train_seed1.log").write_text("step:1/2 train_loss:1.0\n" * 100)
    with pytest.raises(NoTrainLogs, match=r"not read: train_seed1\.log \(too-large\)") as e:
        load_record(tmp_path, caps=Caps(log_bytes=1000))
    assert [f.rule_id for f in e.value.record.findings] == ["PG-INPUT-003"]


def test_every_parsed_log_candidate_is_charged_to_the_combined_log_cap(tmp_path):
    """A `.txt` is parsed in full before its content says it is no train log: that read counts
    against `all_logs_bytes` too, so a record of large notes cannot make the loader parse more
    than the combined cap. Here three 4,000-byte notes spend a 9,000-byte budget: the third
    note and the log after them are refused, not read."""
    from harness.records import Caps, NoTrainLogs, load_record

    (tmp_path / "README.md").write_text("# r\n")
    for i in (1, 2, 3):
        (tmp_path / f"notes{i}.txt").write_text("a few words about the idea\n" * 148)  # 3,996 bytes
    (tmp_path / "train_seed1.log").write_text((FIX / "record_3seed" / "train_seed42.log").read_text())
    with pytest.raises(NoTrainLogs) as e:
        load_record(tmp_path, caps=Caps(all_logs_bytes=9_000))
    roles = {x.rel: x.role for x in e.value.record.inventory}
    assert roles == {"README.md": "readme", "notes1.txt": "other", "notes2.txt": "other",
                     "notes3.txt": "too-large", "train_seed1.log": "too-large"}
    assert [f.rule_id for f in e.value.record.findings] == ["PG-INPUT-003", "PG-INPUT-003"]
    rec = load_record(tmp_path, caps=Caps(all_logs_bytes=20_000))  # room for all: the log loads
    assert [lf.rel.rsplit("/", 1)[-1] for lf in rec.logs] == ["train_seed1.log"]
