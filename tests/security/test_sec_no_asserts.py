"""No check in the package is an `assert`: `python -O` strips them (audit finding 12: "D_bar is in no
optimiser" was one).  Checks raise ZooError or a built-in exception explicitly instead."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_package_code_has_no_assert_statements():
    found = []
    for package in ("zoo", "train", "export", "serve"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Assert):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not found, "asserts vanish under python -O:\n" + "\n".join(found)


def test_teacher_in_an_optimiser_is_refused_under_python_O(tmp_path):
    """The explicit check itself, run under -O: a D_bar parameter smuggled into the student's optimiser
    stops the run."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        import zoo.train.loop as loop
        from train_helpers import SG2, run_tiny, save_tiny_checkpoint
        from zoo.errors import ZooError
        real_make_adam = loop.make_adam
        teacher_params = []
        real_load = loop.TeacherRef.load_discriminator
        def load(self, device="cpu"):
            D = real_load(self, device)
            teacher_params.extend(D.parameters())
            return D
        loop.TeacherRef.load_discriminator = load
        def make_adam(module, lr, cfg, reg_interval):
            opt = real_make_adam(module, lr, cfg, reg_interval)
            if teacher_params:
                opt.add_param_group({{"params": teacher_params[:1]}})
            return opt
        loop.make_adam = make_adam
        teacher = save_tiny_checkpoint({str(tmp_path / 'teacher')!r}, SG2)
        try:
            run_tiny({str(tmp_path / 'run')!r}, SG2, teacher=teacher, T=0.008, S=0.008)
        except ZooError as exc:
            print("refused:", exc)
            sys.exit(0)
        sys.exit(1)
    """)
    proc = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout[-1000:] + proc.stderr[-2000:]
    assert "teacher-discriminator parameter is in a student optimiser" in proc.stdout
