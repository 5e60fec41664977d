"""zoo.latency.LatencyRow as the one shape of a latency row: bench writes it, every older stored shape is
migrated to it (migrate_row), and the readers (latency budgets, zoo compare, zoo serve) see the same figures."""
import json

import pytest

from zoo.latency import LatencyRow, migrate_row, parse_rows, quality, speedup_row

FP = "cpu:Test CPU:avx2"

# the three shapes rows were stored in before LatencyRow: zoo bench's, a hand-written / early registry row,
# and a row as zoo compare's report printed it; all say "12.5 ms at batch 8, 3.2x the full width"
BENCH = {"model": "m", "ch_mul": "1/2", "backend": "eager", "dtype": "fp32", "batch": 8, "median_ms": 12.5,
         "mean_ms": 13.0, "speedup_vs_full": 3.2, "fingerprint": FP}
OLD_REGISTRY = {"batch": 8, "ms": 12.5, "speedup": 3.2, "backend": "eager", "hardware": {"fingerprint": FP}}
COMPARE_REPORT = {"device": "Test CPU", "backend": "eager", "dtype": "fp32", "batch": 8, "ms": 12.5, "speedup": 3.2}


@pytest.mark.parametrize("stored", [BENCH, OLD_REGISTRY, COMPARE_REPORT], ids=["bench", "old-registry", "compare"])
def test_every_stored_shape_reads_as_the_same_row(stored):
    row = LatencyRow.from_dict(stored)
    assert (row.ms, row.speedup, row.batch, row.backend, row.dtype) == (12.5, 3.2, 8, "eager", "fp32")
    migrated = migrate_row(stored)
    assert migrated["median_ms"] == 12.5 and migrated["speedup_vs_full"] == 3.2
    assert all(migrated[k] == v for k, v in stored.items())  # old keys are kept: old readers still work
    # written back, the row reads the same again (a fixed point), and is JSON
    again = LatencyRow.from_dict(json.loads(json.dumps(row.to_dict())))
    assert again == row


def test_migration_prefers_the_current_keys_and_fills_the_fingerprint():
    both = {"median_ms": 2.0, "ms": 9.0, "speedup_vs_full": 1.5, "speedup": 7.0, "batch": 1}
    assert (LatencyRow.from_dict(both).ms, LatencyRow.from_dict(both).speedup) == (2.0, 1.5)
    assert LatencyRow.from_dict(OLD_REGISTRY).fingerprint == FP  # from the old "hardware" block
    assert LatencyRow.from_dict(COMPARE_REPORT).fingerprint is None  # never counts as measured here
    assert migrate_row({"mean_ms": 4.0})["median_ms"] == 4.0 and migrate_row({"latency_ms": 5})["median_ms"] == 5
    assert migrate_row({})["median_ms"] is None and migrate_row({})["speedup_vs_full"] is None


def test_old_entry_metadata_still_drives_the_readers():
    """An entry published with old rows: the speedup a server reports and the row a budget picks."""
    rows = parse_rows([OLD_REGISTRY, {"batch": 1, "ms": 4.0, "speedup": 2.0, "hardware": {"fingerprint": FP}},
                       {"batch": "x"}])  # the unusable one is skipped
    assert len(rows) == 2
    assert speedup_row(rows, FP, batch=1).speedup == 2.0 and speedup_row(rows, FP, batch=8).speedup == 3.2
    assert speedup_row(rows, "cpu:elsewhere", batch=6).speedup == 3.2  # another machine's, nearest batch


def test_quality_reads_the_kid_through_metric_value():
    info = {"n": 256, "real": {"sha256": "ab" * 32}}
    assert quality({"metrics": {"kid": 0.01}, "metrics_info": info}) == (0.01, ("ab" * 32, 256))
    assert quality({"metrics": {"kid": 0.01}, "training": {"metrics_info": info}}) == (0.01, ("ab" * 32, 256))
    stored = {"metrics": {"kid": {"value": 0.02, "data_sha256": "cd" * 32, "n": 50}}, "metrics_info": info}
    assert quality(stored) == (0.02, ("cd" * 32, 50))  # the value's own provenance wins
    assert quality({"metrics": {"kid": 0.01}}) == (0.01, None)
    assert quality({"metrics": {"kid": float("nan")}}) == (None, None) and quality({}) == (None, None)
