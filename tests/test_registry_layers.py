"""The registry in layers: which module may import which, and one meaning per name.

    zoo.integrity  <-  zoo.checkpoint
                   <-  zoo.registry.model  <-  stores (local, http, hf; mlflow_registry)  <-  zoo.registry.schemes
                                                                                          <-  api, publish, cli
                       zoo.registry.model  <-  zoo.registry.card (model cards, read by the hf store and publish's callers)

Checked on the source (every import, at module level or inside a function), so a lazy import that
reaches the wrong way is caught as well as a top-level one.
"""
import ast
import dataclasses
from pathlib import Path

import pytest
import torch

import zoo
from test_registry import _default_registry_only, make_checkpoint  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
STORES = ("zoo.registry.local", "zoo.registry.http", "zoo.registry.hf", "zoo.registry.mlflow_registry")


def imports_of(module: str) -> set[str]:
    """Every module ``module`` imports (``from a.b import c`` counts as a.b and a.b.c)."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return {m for m in out if m.startswith("zoo")}


def registry_imports(module: str) -> set[str]:
    return {m for m in imports_of(module) if m.startswith("zoo.registry.")} - {module}


def test_integrity_and_checkpoint_import_no_registry():
    assert imports_of("zoo.integrity") <= {"zoo.errors", "zoo.errors.ZooError"}
    assert not {m for m in imports_of("zoo.checkpoint") if m.startswith("zoo.registry")}


def test_the_model_imports_no_store():
    assert registry_imports("zoo.registry.model") == set()


@pytest.mark.parametrize("store", STORES)
def test_a_store_depends_on_the_model_only(store):
    """No store reaches into the api, the scheme table or another store (the card writer is a leaf on the
    model, checked below)."""
    assert {m.split(".")[2] for m in registry_imports(store)} <= {"model", "card"}


def test_the_card_writer_depends_on_the_model_only():
    assert {m.split(".")[2] for m in registry_imports("zoo.registry.card")} <= {"model"}


def test_the_scheme_table_opens_every_store_lazily():
    from zoo.registry.schemes import SCHEMES

    tree = ast.parse((ROOT / "zoo/registry/schemes.py").read_text())
    top = {n.module for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert not top & set(STORES)  # imported only when a URI of that scheme is opened
    assert {"zoo.registry.local", "zoo.registry.http", "zoo.registry.hf"} <= imports_of("zoo.registry.schemes")
    assert set(SCHEMES) == {"file", "http", "https", "hf"}


def test_one_function_called_load_checkpoint():
    defs = [p.relative_to(ROOT).as_posix()
            for folder in ("zoo", "train", "export", "serve") for p in sorted((ROOT / folder).rglob("*.py"))
            for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, ast.FunctionDef) and node.name == "load_checkpoint"]
    assert defs == ["zoo/checkpoint.py"]
    assert zoo.load_checkpoint is zoo.checkpoint.load_checkpoint


def test_load_applies_the_family_preparation(monkeypatch, tmp_path):
    """zoo.load hands back what the family's prepare(G) returns, given the eval-mode generator."""
    import zoo.families

    directory, _ = make_checkpoint(tmp_path / "ckpt")
    zoo.registry.publish(directory, registry=str(tmp_path / "reg"))
    seen = []

    def prepare(G):
        seen.append((G.training, next(G.parameters()).dtype))
        G.prepared_by_family = True
        return G

    family = zoo.families.get_family("stylegan2")
    monkeypatch.setattr(zoo.families, "family_of", lambda G: dataclasses.replace(family, prepare=prepare))
    G = zoo.load("stylegan2-emoji", ch_mul="1/8", dtype="bf16", registry=str(tmp_path / "reg"))
    assert G.prepared_by_family and seen == [(False, torch.bfloat16)]
