"""Capturing a model's rows: its token-embedding table, or one layer's MLP input and output over real text.

The text available offline is the docstrings of the Python standard library, read with ast (never
imported). A capture is deterministic given (model, kind, layer, rows, seed) and carries its
provenance (model, layer, text source, rows, seed, date, versions) as safetensors metadata.
"""
from __future__ import annotations

import ast
import datetime
import functools
import hashlib
import importlib.metadata
import platform
import re
import sysconfig
from pathlib import Path

import numpy as np

from factmlp.embeddings.models import Loaded, load_model, mlp_sites, resolve_layer
from factmlp.options import ParamError

KINDS = ("token_embeddings", "mlp_io")
TENSORS = {"token_embeddings": ("embeddings",), "mlp_io": ("inputs", "outputs")}
TEXT_SOURCE = "python-stdlib-docstrings"
MAX_TOKENS = 256  # tokens per passage: docstrings are short, and MiniLM's limit is 512
CAPTURE_VERSION = 1  # bump when a capture of the same name would give different rows


@functools.lru_cache(maxsize=1)
def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
    return sorted((p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts)),
                  key=lambda p: p.relative_to(root).as_posix())


def stdlib_passages(seed: int):
    """Distinct docstrings (≥ 40 characters) of the standard library, files in a seeded order.

    Files are parsed lazily, so a small capture reads only a few of them.
    """
    files = _stdlib_files()
    order = np.random.default_rng([seed, 30]).permutation(len(files))
    seen = set()
    for i in order:
        try:
            tree = ast.parse(files[i].read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 40 and doc not in seen:
                    seen.add(doc)
                    yield doc


def _token_candidates(loaded: Loaded) -> np.ndarray:
    """Row ids of real tokens: no special tokens, no BERT ``[unusedN]`` slots, no padding rows past
    the tokenizer's vocabulary (as Qwen's table has)."""
    tok = loaded.tokenizer
    rows = int(loaded.model.get_input_embeddings().weight.shape[0])
    ids = np.arange(min(rows, len(tok)))
    special = set(tok.all_special_ids) | set(getattr(tok, "added_tokens_decoder", {}) or {})
    names = tok.convert_ids_to_tokens(ids.tolist())
    keep = [i for i, t in zip(ids, names) if i not in special and t is not None
            and not re.fullmatch(r"\[unused\d+\]", t)]
    return np.asarray(keep, dtype=np.int64)


def capture(model: str, kind: str, layer: int, rows: int, seed: int = 0, *,
            loaded: Loaded | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Rows of a real model and their provenance; deterministic given (model, kind, layer, rows, seed).

    token_embeddings: a seeded sample of ``rows`` distinct real-token rows of the input embedding
    table (sorted by id). mlp_io: at ``layer``, the MLP's input and output at every token of real
    text (standard-library docstrings, files in seeded order) until ``rows`` distinct positions are
    collected; special tokens are skipped, and so are repeats of a position's context (in a causal
    model, the same prefix gives the same activations). ``loaded``: an already loaded model to use
    under the name ``model`` (tests use it to run the decoder path on a small random model).
    """
    import torch

    if kind not in KINDS:
        raise ParamError("kind", f"got {kind!r}; allowed: {', '.join(KINDS)}")
    if rows < 1:
        raise ParamError("llm_rows", f"got {rows}; allowed: an integer >= 1")
    loaded = loaded or load_model(model)
    meta = {"format": "factsweep-capture", "capture_version": str(CAPTURE_VERSION), "kind": kind, "model": model,
            "model_source": loaded.source, "rows": str(rows), "seed": str(seed), "d": str(loaded.d),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "transformers": importlib.metadata.version("transformers"),
            "python": platform.python_version()}
    if kind == "token_embeddings":
        candidates = _token_candidates(loaded)
        if rows > len(candidates):
            raise ParamError("llm_rows", f"got {rows}; allowed: at most {len(candidates)} (real tokens of {model})")
        ids = np.sort(np.random.default_rng([seed, 31]).choice(candidates, rows, replace=False))
        weight = loaded.model.get_input_embeddings().weight.detach()
        table = weight[torch.as_tensor(ids, device=weight.device)]
        arrays = {"embeddings": table.float().cpu().numpy(), "token_ids": ids[:, None]}
        meta.update(layer="-", text_source="-", site="input token-embedding table")
        return arrays, meta
    layer = resolve_layer(model, layer, loaded.num_layers)
    sites = mlp_sites(loaded.model)
    if layer not in sites:
        raise ParamError("llm_layer", f"{model} has no MLP found at layer {layer}; allowed: "
                         f"{', '.join(map(str, sorted(sites))) or 'none found'}")
    first, last, name = sites[layer]
    got: dict[str, torch.Tensor] = {}
    hooks = [first.register_forward_pre_hook(lambda m, args, kwargs: got.__setitem__(
                 "inputs", args[0] if args else next(iter(kwargs.values()))), with_kwargs=True),
             last.register_forward_hook(lambda m, args, out: got.__setitem__(
                 "outputs", out[0] if isinstance(out, tuple) else out))]
    inputs, outputs, token_ids, digest, seen, total = [], [], [], hashlib.sha256(), set(), 0
    try:
        with torch.inference_mode():
            for passage in stdlib_passages(seed):
                enc = loaded.tokenizer(passage, truncation=True, max_length=MAX_TOKENS,
                                       return_special_tokens_mask=True, return_tensors="pt")
                special = enc.pop("special_tokens_mask")[0].numpy().astype(bool)
                ids = enc["input_ids"][0].tolist()
                loaded.model(**{k: v.to(loaded.device) for k, v in enc.items()})
                keep = []
                for pos in np.flatnonzero(~special):
                    context = tuple(ids[:pos + 1]) if loaded.causal else (tuple(ids), int(pos))
                    if context not in seen:
                        seen.add(context)
                        keep.append(int(pos))
                keep = keep[:rows - total]
                if keep:
                    digest.update(passage.encode())
                    inputs.append(got["inputs"][0, keep].float().cpu().numpy())
                    outputs.append(got["outputs"][0, keep].float().cpu().numpy())
                    token_ids.append(np.asarray(ids)[keep])
                    total += len(keep)
                if total >= rows:
                    break
    finally:
        for h in hooks:
            h.remove()
    if total < rows:
        raise ParamError("llm_rows", f"got {rows}, but the text source yields only {total} distinct token "
                         f"positions; allowed: at most {total}")
    arrays = {"inputs": np.concatenate(inputs), "outputs": np.concatenate(outputs),
              "token_ids": np.concatenate(token_ids).astype(np.int64)[:, None]}  # 2-D, as load_table reads
    meta.update(layer=str(layer), text_source=f"{TEXT_SOURCE} (Python {platform.python_version()})",
                text_sha256=digest.hexdigest(),
                site=f"{name}: MLP input and output"
                + (" (before residual and LayerNorm)" if first is not last else ""))
    return arrays, meta
