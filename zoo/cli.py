"""The ``zoo`` console script.

Each subcommand lives in the package that owns it and is imported only when it runs, so
``zoo --help`` and ``zoo stats`` never import training, serving or export back-ends.  A subcommand
module provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help).  The module is imported only when the command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("zoo.train.cli", "train a teacher, a DGL-GAN student or a baseline student"),
    "sweep": ("zoo.train.sweep", "run a study: teacher, DGL-GAN students and paired baselines, resumably"),
    "eval": ("zoo.train.metrics.cli", "image-quality metrics of a generator or image folder against a dataset"),
    "data": ("zoo.train.data.cli", "build the embedded datasets or import your own images"),
    "sample": ("zoo.sample", "generate an image grid from a named config, checkpoint or zoo entry"),
    "stats": ("zoo.export.stats", "parameters and MACs of a named configuration"),
    "export": ("zoo.export.cli", "export a generator to ONNX / TorchScript / torch.compile / TensorRT"),
    "bench": ("zoo.export.bench", "measure generator latency per batch size and width"),
    "import": ("zoo.convert.cli", "convert an official StyleGAN2 / BigGAN checkpoint into a zoo checkpoint"),
    "publish": ("zoo.registry.cli", "publish a checkpoint as a new immutable registry version"),
    "list": ("zoo.registry.cli", "list registry entries"),
    "info": ("zoo.registry.cli", "full metadata of one registry entry"),
    "alias": ("zoo.registry.cli", "point an alias (stable, ...) at a version"),
    "verify": ("zoo.registry.cli", "re-hash registry files and report tampered or missing ones"),
    "compare": ("zoo.train.compare", "compare the widths of one registry model, or training runs (MLflow or run "
                "directories): DGL-GAN vs Baseline tables, HTML report"),
    "serve": ("zoo.serve.cli", "serve generators over HTTP"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: zoo [--version] <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'zoo <command> --help' for the options of one command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from zoo import __version__
    from zoo.errors import ZooError

    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"ganzoo {__version__}")
        return 0
    command = argv[0]
    if command not in COMMANDS:
        print(f"zoo: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    if from_command_line:  # re-exec with tuned glibc malloc settings (zoo/launch.py); no-op when set/opted out
        from zoo.launch import ensure_malloc_tuning

        ensure_malloc_tuning()
    module_name, help_ = COMMANDS[command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"zoo {command}", description=help_)
    if hasattr(module, "commands"):  # one module serving several subcommands
        module.commands[command][0](parser)
        runner = module.commands[command][1]
    else:
        module.add_arguments(parser)
        runner = module.run
    args = parser.parse_args(argv[1:])
    for action in parser._actions:
        # argparse (Python 3.11 here) drops an option value that is exactly '--' (`--seeds=--`) and stores an
        # empty list where every command expects one string or number: make that the usual usage error
        if isinstance(action, argparse._StoreAction) and action.nargs is None \
                and isinstance(getattr(args, action.dest, None), list):
            parser.error(f"argument {'/'.join(action.option_strings) or action.dest}: expected one value")
    try:
        return int(runner(args) or 0)
    except (ZooError, ValueError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"zoo {command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `zoo ... | head`: the reader left; no traceback, and none at exit either
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"zoo {command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
