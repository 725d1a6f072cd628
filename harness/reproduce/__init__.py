"""Reproduce a record: the whole flow in one package, read in this order.

- `claims`   what the record says each seed scored (submission.json, else its own logs), and
             which evaluation phase is the scored one;
- `observe`  what the harness saw for one seed: train and eval times by its own clock from the
             stamped output, the artifact and code bytes on disk; the PG-TIME-1xx/BYTES-1xx rules;
- `seeds`    seeds × runner → one atomic result file per seed, resumable; comparison with the
             claims (PG-REPRO-*) and aggregation;
- `report`   every seed's result + `pgolf check` on the reproduced logs (whose PG-STATS-001 is
             the significance) → text, markdown, JSON and plots.

The runners that execute a seed live in `harness.runners`; this package only asks them to.
"""
