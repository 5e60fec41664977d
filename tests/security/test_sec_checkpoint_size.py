"""A config.json that names a huge architecture is refused before anything is allocated."""
import json
import subprocess
import sys
import textwrap


from train_helpers import SG2, save_tiny_checkpoint


def _rewrite_config(ckpt, **arch):
    from zoo.integrity import MANIFEST_FILE, sha256_file

    cfg_path = ckpt / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["arch"].update(arch)
    cfg_path.write_text(json.dumps(cfg))
    manifest = json.loads((ckpt / MANIFEST_FILE).read_text())  # re-signed: the index is the attacker's
    manifest["files"]["config.json"] = {"sha256": sha256_file(cfg_path), "size": cfg_path.stat().st_size}
    (ckpt / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_huge_architecture_is_refused_before_allocation(tmp_path):
    ckpt = save_tiny_checkpoint(tmp_path / "ckpt", SG2)
    _rewrite_config(ckpt, channel_base=1 << 22, channel_max=1 << 14)  # ~ tens of GB of fp32 weights
    code = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        from zoo.checkpoint import load_checkpoint
        from zoo.errors import ZooError
        try:
            load_checkpoint({str(ckpt)!r})
        except ZooError as exc:
            print("ZooError:", exc)
            sys.exit(0)
        sys.exit(1)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "do not belong together" in proc.stdout


def test_matching_checkpoints_still_load(tmp_path):
    from zoo.checkpoint import load_checkpoint

    ckpt = save_tiny_checkpoint(tmp_path / "ckpt", SG2)
    assert load_checkpoint(ckpt).G_ema is not None
