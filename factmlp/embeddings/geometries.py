"""Real LLM embeddings as fact-set geometries (docs/science.md#fact-sets-and-geometries).

``llm_token_embeddings``: rows of a model's token-embedding table (keys = values when tied).
``llm_mlp_io``: the input and output of one layer's MLP at real-text token positions, paired row by
row; with mapping ``identity`` the MLP to build maps each input to its own output. Rows come from a
capture (``factmlp.embeddings.cache``) or a table file (``table_path``); F of them are sampled.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from factmlp.embeddings import safetensors
from factmlp.embeddings.cache import cached_capture
from factmlp.embeddings.capture import TENSORS
from factmlp.embeddings.models import check_model, resolve_layer
from factmlp.embeddings.tables import load_npy, load_table
from factmlp.factsets import MAPPINGS, FactSet, Geometry, assemble, stream
from factmlp.options import Options, ParamError, option

NAMES = ("llm_token_embeddings", "llm_mlp_io")
TABLE_SUFFIXES = (".safetensors", ".npy")


@dataclass(frozen=True)
class EmbeddingOptions(Options):
    tied: bool = option(True, "keys and values are the same table")
    mapping: str = option("permutation", choices=MAPPINGS)
    whiten: bool = option(False, "whiten the values")
    llm_model: str = option("all-MiniLM-L6-v2", "llm_* geometries: all-MiniLM-L6-v2 (packaged, offline) or a "
                            "Hugging Face causal-LM id 'org/name' (needs the hf extra and the hub)")
    llm_layer: int = option(-1, "llm_mlp_io: the layer whose MLP input/output is captured; -1 = middle", low=-1)
    llm_rows: int = option(0, "llm_* geometries: rows captured, the pool the F facts are sampled from; 0 = as "
                           "many as needed", low=0)
    llm_normalize: bool = option(True, "llm_* geometries: scale rows to unit norm")
    table_path: str = option("", "llm_* geometries: a captured table (.safetensors of `factsweep embeddings "
                             "capture`, or .npy token embeddings) instead of llm_model")


def kind_of(geometry: str) -> str:
    if geometry not in NAMES:
        raise ParamError('geometry', f"got {geometry!r}; allowed: {', '.join(NAMES)}")
    return geometry[len("llm_"):]


def rows_needed(geometry: str, num_facts: int, tied: bool) -> int:
    """Untied token embeddings draw keys and values from disjoint rows, so they need 2F rows."""
    return 2 * num_facts if geometry == "llm_token_embeddings" and not tied else num_facts


def table_info(path: str) -> tuple[dict[str, tuple[int, int]], dict]:
    """Shapes of the 2-D tensors of a captured table and its metadata, from the header alone."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in TABLE_SUFFIXES:
        raise ParamError('table_path', f"got {path!r}; allowed: a .safetensors file from `factsweep embeddings "
                         "capture` or a .npy table (token embeddings)")
    if not os.path.isfile(path):
        raise ParamError('table_path', f"no such file {path!r}; allowed: an existing .safetensors or .npy file")
    if suffix == ".npy":
        try:
            shape = load_npy(path).shape
        except ValueError as err:
            raise ParamError('table_path', f"{err}; allowed: a 2-D .npy table") from None
        return {"embeddings": shape}, {"kind": "token_embeddings"}
    try:
        header, _ = safetensors.read_header(path)
    except ValueError as err:  # a BadFile: the file and what is wrong (and, mostly, what is allowed)
        said = str(err) if "allowed:" in str(err) else f"{err}; allowed: a file written by `factsweep embeddings capture`"
        raise ParamError('table_path', said) from None
    shapes = {k: tuple(header[k].get("shape", ())) for k in safetensors.tensor_names(header)
              if isinstance(header[k], dict)}
    return shapes, dict(header.get("__metadata__") or {})


def check(geometry: str, d: int, num_facts: int, options: EmbeddingOptions) -> None:
    """Everything about a fact set of this geometry that can be known without running a model."""
    kind = kind_of(geometry)
    need = rows_needed(geometry, num_facts, options.tied)
    what = f"num_facts={num_facts}" + (" with tied=false (2F rows)" if need != num_facts else "")
    path = options.table_path
    if path:
        shapes, meta = table_info(path)
        if meta.get("kind", kind) != kind:
            raise ParamError('table_path', f"{path} holds a {meta['kind']} capture; allowed: a {kind} capture "
                             f"for geometry {geometry}")
        missing = [t for t in TENSORS[kind] if t not in shapes]
        if missing:
            raise ParamError('table_path', f"{path} lacks tensor {missing[0]!r}; allowed: a file with "
                             f"{', '.join(TENSORS[kind])}")
        shape = shapes[TENSORS[kind][0]]
        if len(shape) != 2 or any(shapes[t] != shape for t in TENSORS[kind]):
            got = ", ".join(f"{t} {shapes[t]}" for t in TENSORS[kind])
            raise ParamError('table_path', f"{path} has {got}; allowed: 2-D tables of one shape")
        if shape[0] < need:
            raise ParamError('num_facts', f"{path} has {shape[0]} rows, too few for {what}; "
                             f"allowed: at most {shape[0] if need == num_facts else shape[0] // 2}")
        if d != shape[1]:
            raise ParamError('d', f"got {d} but {path} has d={shape[1]}; allowed: {shape[1]}")
        return
    model = options.llm_model
    info = check_model(model)
    if options.llm_rows and options.llm_rows < need:
        raise ParamError('llm_rows', f"got {options.llm_rows}, too few for {what}; allowed: >= {need}, or 0 "
                         "(exactly as many)")
    if info is not None:
        if kind == "mlp_io":
            resolve_layer(model, options.llm_layer, info.layers)
        if d != info.d:
            raise ParamError('d', f"got {d} but {model} has d={info.d}; allowed: {info.d}")


@functools.lru_cache(maxsize=2)
def _tables(path: str, kind: str) -> tuple[np.ndarray, ...]:
    """The capture's tensors through the safe loaders (no pickle); cached per process."""
    if path.lower().endswith(".npy"):
        return (load_table(path),)
    return tuple(load_table(path, name=name) for name in TENSORS[kind])


def build(geometry: str, d: int, num_facts: int, seed: int, options: EmbeddingOptions) -> FactSet:
    """A fact set of real embeddings, in float64.

    F rows are a seeded sample of the captured rows (``llm_rows``; 0 = exactly as many as needed).
    Token embeddings: keys = values when tied, else keys and values from disjoint rows. MLP I/O: keys
    are the MLP inputs and values the outputs of the same positions (``tied`` does not apply); use
    mapping 'identity' for the paper's task. llm_normalize: unit rows, as the synthetic geometries
    have; raw rows keep their norms, and large-norm values then dominate dot-product decoding.
    """
    kind = kind_of(geometry)
    check(geometry, d, num_facts, options)
    need = rows_needed(geometry, num_facts, options.tied)
    model = options.llm_model
    path = options.table_path or os.fspath(cached_capture(model, kind, options.llm_layer, options.llm_rows or need,
                                                          seed))
    tables = _tables(path, kind)
    if tables[0].shape[1] != d:
        raise ParamError('d', f"got {d} but {model} has d={tables[0].shape[1]}; allowed: {tables[0].shape[1]}")
    if len(tables[0]) < need:
        raise ParamError('num_facts', f"the capture has {len(tables[0])} rows, too few for num_facts={num_facts}; "
                         f"allowed: at most {len(tables[0])}")
    index = stream(seed, "rows").choice(len(tables[0]), need, replace=False)
    if kind == "mlp_io":
        index = np.sort(index)
        keys, values = (np.asarray(t[index], dtype=np.float64) for t in tables)
    else:
        keys = np.asarray(tables[0][np.sort(index[:num_facts])], dtype=np.float64)
        values = keys.copy() if options.tied else np.asarray(tables[0][np.sort(index[num_facts:])], dtype=np.float64)
    return assemble(keys, values, seed, mapping=options.mapping, normalize=options.llm_normalize,
                    whiten_values=options.whiten, map_stream="rows_map")


GEOMETRIES = {name: Geometry(name, functools.partial(build, name), EmbeddingOptions, functools.partial(check, name))
              for name in NAMES}
