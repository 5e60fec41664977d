"""zoo.metrics.MetricValue: a typed view of the stored ``metrics`` + ``metrics_info`` (formats unchanged),
produced by train.metrics.evaluation.values and read by zoo compare's provenance check."""
import json

from zoo.metrics import FeatureNet, MetricValue, metric_values

EFF = {"net": "efficientnet-lite0", "weights_sha256": "0123456789abcdef" * 4, "input_resolution": 128}
INFO = {"n": 64, "n_real": 40, "seed": 0,
        "real": {"name": "rand16", "sha256": "ab" * 32, "count": 40, "resolution": 16, "channels": 3},
        "feature_net": EFF, "inception": {"sha256": "ee" * 32, "standard": True}, "truncation_psi": 1.0,
        "settings": {"kid_subsets": 100, "kid_subset_size": 1000, "pr_k": 3, "swd_patches": 128,
                     "swd_directions": 128, "swd_repeats": 4, "is_splits": 10}}


def test_a_value_knows_what_it_was_computed_on():
    kid = MetricValue.from_info("kid", 0.012, INFO)
    assert (kid.value, kid.data_sha256, kid.n, kid.n_real, kid.resolution) == (0.012, "ab" * 32, 64, 40, 16)
    assert kid.feature_net == FeatureNet("efficientnet-lite0", EFF["weights_sha256"], 128)
    assert kid.data_and_n == ("ab" * 32, 64) and kid.recorded
    assert dict(kid.settings) == {"kid_subsets": 100, "kid_subset_size": 1000}
    assert MetricValue.from_info("swd", 3.0, INFO).feature_net is None  # pixel space
    assert dict(MetricValue.from_info("swd_16", 3.0, INFO).settings)["swd_repeats"] == 4
    assert MetricValue.from_info("fid", 9.0, INFO).feature_net.weights_sha256 == "ee" * 32
    bare = MetricValue.from_info("kid", 0.5, None)
    assert not bare.recorded and bare.data_and_n is None and bare.feature_net is None


def test_basis_names_what_must_agree():
    basis = MetricValue.from_info("kid", 0.012, INFO).basis()
    assert basis == {"real data sha256": "ab" * 32, "n (generated images)": 64, "n_real (real images)": 40,
                     "resolution": 16, "truncation psi": 1.0, "setting kid_subsets": 100,
                     "setting kid_subset_size": 1000, "feature network": "efficientnet-lite0 weights 0123456789ab "
                                                                          "at 128 px"}
    assert "feature network" not in MetricValue.from_info("swd", 1.0, INFO).basis()
    assert MetricValue.from_info("is", 5.0, INFO).basis()["Inception weights"] == "ee" * 32
    other = dict(INFO, n=128)
    assert MetricValue.from_info("kid", 0.01, other).basis() != basis


def test_stored_forms_and_the_evaluator_output():
    from zoo.train.metrics.evaluation import provenance, values

    assert MetricValue.from_stored("kid", {"value": 0.02, "data_sha256": "cd" * 32, "n": 50}, INFO).data_and_n == (
        "cd" * 32, 50)
    assert MetricValue.from_stored("kid", "0.1", INFO) is None and MetricValue.from_stored("kid", None) is None
    assert set(metric_values({"kid": 0.1, "fd": float("inf"), "note": "x"}, INFO)) == {"kid"}
    # what evaluate() returns -> MetricValues whose provenance is exactly the stored metrics_info
    result = {"metrics": {"kid": 0.012, "swd": 2.5}, "n": 64, "seed": 0, "real": {**INFO["real"], "n": 40},
              "fake": {"truncation_psi": 1.0}, "feature_net": {**EFF, "dim": 1280}, "settings": INFO["settings"]}
    info = provenance(result)
    json.dumps(info)
    out = values(result)
    assert set(out) == {"kid", "swd"} and out["kid"] == MetricValue.from_info("kid", 0.012, info)
    assert out["kid"].feature_net.input_resolution == 128 and out["swd"].data_sha256 == "ab" * 32


def test_compare_refuses_through_metric_values():
    from zoo.train.compare import RunRecord, check_provenance

    def run(name, info, **kw):
        return RunRecord(key=name, name=name, source="dir", status="FINISHED", metrics={"kid": 0.1},
                         metrics_info=info, **kw)

    other_net = dict(INFO, feature_net=dict(EFF, weights_sha256="f" * 64))
    message, agreed, _ = check_provenance([run("a", INFO), run("b", other_net)], "kid")
    assert "feature network differs" in message and agreed["n (generated images)"] == "64"
    assert check_provenance([run("a", INFO), run("b", other_net)], "swd")[0] is None  # SWD uses no network
    # a run from before metrics_info: its training data's hash stands in for the metric data's
    old = run("old", None, data={"sha256": "99" * 32})
    message, _, unrecorded = check_provenance([run("a", INFO), old], "kid")
    assert "real data sha256 differs" in message and unrecorded == ["old"]
