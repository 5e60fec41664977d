"""publish/alias mirrored into an MLflow Model Registry on a temporary sqlite tracking store."""
import shutil

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("sqlalchemy")

import zoo  # noqa: E402
from test_registry import _default_registry_only, make_checkpoint  # noqa: E402, F401
from zoo.registry import publish  # noqa: E402


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory):
    """One sqlite DB with MLflow's schema (the Alembic migrations take seconds) and a training run."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow") / "template.db"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}")
    run = client.create_run(client.create_experiment("train"))
    client.set_terminated(run.info.run_id)
    return path, run.info.run_id


def test_publish_registers_version_and_mirrors_aliases(tmp_path, migrated_db, monkeypatch):
    from mlflow import MlflowClient

    db = tmp_path / "mlflow.db"
    shutil.copy(migrated_db[0], db)
    uri = f"sqlite:///{db}"
    run_id = migrated_db[1]
    d1, _ = make_checkpoint(tmp_path / "a", metadata={"training": {"method": "dgl", "mlflow_run_id": run_id}})
    ref1 = publish(d1, aliases=["stable"], mlflow_uri=uri)
    assert ref1.record["mlflow"] == {"tracking_uri": uri, "model_name": "stylegan2-emoji-ch1_8", "version": "1",
                                     "run_id": run_id}
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mv = client.get_model_version("stylegan2-emoji-ch1_8", "1")
    assert mv.run_id == run_id and mv.tags["zoo_version"] == "1" and mv.tags["ch_mul"] == "1/8"
    assert mv.tags["generator_sha256"] == ref1.metadata["registry"]["generator_sha256"]
    assert mv.source.endswith("/stylegan2-emoji/1_8/1")
    assert str(client.get_model_version_by_alias("stylegan2-emoji-ch1_8", "stable").version) == "1"

    # an unknown run id is not linked (warning); MLFLOW_TRACKING_URI alone turns registration on
    d2, _ = make_checkpoint(tmp_path / "b", metadata={"mlflow_run_id": "f" * 32})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.warns(UserWarning, match="not on"):
        ref2 = publish(d2)
    assert ref2.record["mlflow"]["version"] == "2" and ref2.record["mlflow"]["run_id"] is None
    assert zoo.info("stylegan2-emoji", "1/8")["mlflow"]["version"] == "2"

    zoo.registry.set_alias("stylegan2-emoji", "1/8", "stable", 2)
    assert str(client.get_model_version_by_alias("stylegan2-emoji-ch1_8", "stable").version) == "2"
    zoo.registry.set_alias("stylegan2-emoji", "1/8", "stable", None)
    assert "stable" not in client.get_registered_model("stylegan2-emoji-ch1_8").aliases
