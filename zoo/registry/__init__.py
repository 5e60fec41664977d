"""The zoo registry: versioned, checksummed checkpoints behind ``zoo.load(name, ch_mul=...)``.

    >>> import zoo
    >>> G = zoo.load("stylegan2-emoji", ch_mul="1/2")               # latest version, eval mode
    >>> G = zoo.load("stylegan2-emoji", ch_mul=0.5, version="stable")
    >>> ckpt = zoo.registry.load_entry("stylegan2-emoji", ch_mul=1)  # G_ema, G, D, config, metadata
    >>> zoo.list()                                                   # entries with headline metadata
    >>> zoo.registry.publish("runs/emoji-half", name="stylegan2-emoji", aliases=["stable"])

Stores: a local directory (default ``$GANZOO_HOME/registry`` = ``~/.cache/ganzoo/registry``), a static
HTTP(S) server (``https://host/zoo``), a Hugging Face Hub repo (``hf://org/repo[@revision]``); publish
can also register versions in an MLflow Model Registry.  See docs/registry.md.  Importing this package
imports neither torch nor any optional extra.

Layers: :mod:`zoo.integrity` (hashes, manifests, safe opens, atomic writes, locks) <- :mod:`.model`
(entries, versions, aliases, the index, the store interface) <- the stores (:mod:`.local`, :mod:`.http`,
:mod:`.hf`) <- :mod:`.schemes` (URI scheme -> store) <- :mod:`.api` / :mod:`.publish` / :mod:`.cli`.
"""
from zoo.registry.api import compare, info, list_entries, load, load_entry, locate, resolve, set_alias, stores, verify
from zoo.registry.model import EntryRef, Store, default_registry_uri
from zoo.registry.publish import publish
from zoo.registry.schemes import open_store

__all__ = [
    "EntryRef", "Store", "compare", "default_registry_uri", "info", "list_entries", "load", "load_entry", "locate",
    "open_store", "publish", "resolve", "set_alias", "stores", "verify",
]
