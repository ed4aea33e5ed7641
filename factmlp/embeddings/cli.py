"""``factsweep embeddings``: capture a real model's embeddings to a table file, or show one's provenance.

A command of the ``factsweep.commands`` entry-point group: ``factsweep`` adds it to its parser, and
prints a ``UsageError`` (which command, which option, what is allowed) as its one-line error.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from factmlp.options import ParamError

# factmlp.embeddings names its errors by cell parameter; the CLI names the option the user typed.
OPTION = {"llm_model": "--model", "llm_layer": "--layer", "llm_rows": "--rows", "kind": "--kind",
          "table_path": "FILE"}


class UsageError(ParamError):
    """A bad command-line value: ``source`` (the command), ``key`` (the option) and ``message``."""

    def __init__(self, source: str, key: str, message: str):
        super().__init__(key, message)
        self.source = source


def _usage_error(command: str, err: ValueError) -> UsageError:
    key, message = (err.key, err.message) if isinstance(err, ParamError) else ("-", str(err).splitlines()[0])
    return UsageError(command, OPTION.get(key, key), message)


def cmd_capture(args) -> int:
    from factmlp.embeddings import cache, capture, models, safetensors

    command = "embeddings capture"
    if args.out is not None and Path(args.out).suffix.lower() != ".safetensors":
        raise UsageError(command, "--out", f"got {args.out!r}; allowed: a path ending in .safetensors")
    if args.rows < 1:
        raise UsageError(command, "--rows", f"got {args.rows}; allowed: an integer >= 1")
    if args.kind == "token_embeddings" and args.layer != -1:
        raise UsageError(command, "--layer", f"got {args.layer}; allowed: no --layer with --kind token_embeddings "
                                            "(the embedding table has no layer)")
    start = time.perf_counter()
    try:
        models.check_model(args.model)
        if args.kind == "mlp_io":  # before any weights load (a hub model's config is small)
            models.resolve_layer(args.model, args.layer, models.num_layers(args.model))
        if args.out is None:
            path = cache.cached_capture(args.model, args.kind, args.layer, args.rows, args.seed)
        else:
            arrays, meta = capture.capture(args.model, args.kind, args.layer, args.rows, args.seed)
            path = safetensors.write(args.out, arrays, meta)
        meta = safetensors.metadata(str(path))
    except ValueError as err:
        raise _usage_error(command, err) from None
    print(f"{path}: {meta['rows']} rows x d={meta['d']} ({meta['kind']}) in {time.perf_counter() - start:.1f}s")
    _print_meta(meta)
    return 0


def _print_meta(meta: dict) -> None:
    for key in ("model", "model_source", "kind", "layer", "site", "text_source", "text_sha256", "rows", "seed",
                "d", "date", "python", "torch", "transformers"):
        if key in meta:  # a file's own text: a newline or a terminal escape in it is shown, not obeyed
            value = str(meta[key])
            print(f"  {key}: {value if value.isprintable() else repr(value)}")


def cmd_show(args) -> int:
    from factmlp.embeddings.geometries import table_info

    try:
        shapes, meta = table_info(args.file)
    except ValueError as err:
        raise _usage_error("embeddings show", err) from None
    print(f"{args.file}: " + ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items()))
    _print_meta(meta)
    return 0


def add_parser(sub) -> None:
    """Register ``embeddings capture`` and ``embeddings show`` on the main parser's subcommands."""
    from factmlp.embeddings.capture import KINDS
    from factmlp.embeddings.models import MODELS_ALLOWED

    emb = sub.add_parser("embeddings", help="capture real LLM embeddings as a table (geometries llm_*)")
    verbs = emb.add_subparsers(dest="verb", required=True)
    cap = verbs.add_parser("capture", help="run a model over real text and write its rows with provenance",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cap.add_argument("--model", default="all-MiniLM-L6-v2", help=MODELS_ALLOWED)
    cap.add_argument("--kind", choices=KINDS, default="mlp_io",
                     help="MLP input/output pairs at --layer, or rows of the token-embedding table")
    cap.add_argument("--layer", type=int, default=-1, help="layer of the MLP (mlp_io); -1 = the middle layer")
    cap.add_argument("--rows", type=int, required=True, help="rows to capture")
    cap.add_argument("--seed", type=int, default=0, help="seeds the text order (mlp_io) or the row sample")
    cap.add_argument("--out", default=None, help="a .safetensors file; default: the shared cache "
                                                 "($FACTSWEEP_CACHE or ~/.cache/factsweep)")
    cap.set_defaults(fn=cmd_capture)
    show = verbs.add_parser("show", help="shapes and provenance of a captured table")
    show.add_argument("file")
    show.set_defaults(fn=cmd_show)
