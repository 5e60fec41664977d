"""Runs that start at once on one new MLflow SQLite store (a sweep's workers) must all get a run."""
import subprocess
import sys


def test_concurrent_runs_on_a_new_sqlite_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    code = ("import sys; from train.tracking import Tracker; "
            f"t = Tracker(sys.argv[1], tracking_uri={uri!r}, experiment='sweep', run_name=sys.argv[1]); "
            "print(t.run_id)")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"run{i}")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in results]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("sweep")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(out.strip() for out, _ in results)
