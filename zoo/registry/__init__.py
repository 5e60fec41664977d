"""The zoo registry: versioned, checksummed checkpoints behind ``zoo.load(name, ch_mul=...)``.

    >>> import zoo
    >>> G = zoo.load("stylegan2-emoji", ch_mul="1/2")               # latest version, eval mode
    >>> G = zoo.load("stylegan2-emoji", ch_mul=0.5, version="stable")
    >>> zoo.list()                                                   # entries with headline metadata
    >>> zoo.registry.publish("runs/emoji-half", name="stylegan2-emoji", aliases=["stable"])

Stores: a local directory (default ``$GANZOO_HOME/registry`` = ``~/.cache/ganzoo/registry``), a static
HTTP(S) server (``https://host/zoo``), a Hugging Face Hub repo (``hf://org/repo[@revision]``); publish
can also register versions in an MLflow Model Registry.  See docs/registry.md.  Importing this package
imports neither torch nor any optional extra.
"""
from zoo.registry.api import compare, info, list_entries, load, load_checkpoint, resolve, set_alias, stores, verify
from zoo.registry.publish import publish
from zoo.registry.store import EntryRef, Store, default_registry_uri, open_store

__all__ = [
    "EntryRef", "Store", "compare", "default_registry_uri", "info", "list_entries", "load", "load_checkpoint",
    "open_store", "publish", "resolve", "set_alias", "stores", "verify",
]
