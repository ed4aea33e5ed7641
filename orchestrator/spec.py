"""Sweep specs: a YAML file plus ``key=value`` overrides, validated into cells before anything runs.

The YAML is data only: interpolations (``${...}``, which could read the environment) are refused,
the experiment is chosen from a fixed registry by name, and every cell parameter is checked
against the experiment's declared parameters, so a typo fails at once with a did-you-mean.
"""
from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from factmlp.experiments import REGISTRY, Experiment
from orchestrator.errors import SpecError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
SEARCH_KEYS = {"param": None, "low": "search_low", "high": "search_high", "arity": "search_arity",
               "strategy": None, "threshold": "threshold"}
STRATEGIES = ("binary", "kary")


@dataclass(frozen=True)
class Spec:
    """A validated sweep: its cells plus the operational settings that never enter a cell's identity."""

    name: str
    experiment: Experiment
    cells: list[dict]
    source: str
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_retries: int = 3
    probes_per_task: int = 8
    tracking_uri: str | None = None
    tracking_experiment: str | None = None
    results_root: str = "results"
    cluster_address: str | None = None
    raw: dict = field(default_factory=dict, repr=False)


TOP_LEVEL = {
    "name": str, "experiment": str, "fixed": dict, "grid": dict, "zip": dict, "seeds": list, "search": dict,
    "resources": dict, "packing": dict, "tracking": dict, "storage": dict, "cluster": dict, "description": str,
}
SECTIONS = {
    "resources": {"num_cpus": (int, float), "num_gpus": (int, float), "max_retries": int},
    "packing": {"probes_per_task": int},
    "tracking": {"uri": (str, type(None)), "experiment": (str, type(None))},
    "storage": {"root": str},
    "cluster": {"address": (str, type(None))},
}


def _unknown(source: str, key: str, allowed) -> SpecError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(allowed), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SpecError(source, key, f"unknown key{hint}; allowed: {', '.join(sorted(allowed))}")


def _reject_interpolation(source: str, node: Any, path: str = "") -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _reject_interpolation(source, v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _reject_interpolation(source, v, f"{path}[{i}]")
    elif isinstance(node, str) and "${" in node:
        raise SpecError(source, path, "interpolations (${...}) are not allowed; allowed: plain values")


def _read(path: Path, overrides: list[str]) -> dict:
    source = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError(source, "-", f"cannot read the sweep file ({e.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "-"
        raise SpecError(source, where, f"malformed YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(raw, dict):
        raise SpecError(source, "-", "the sweep file must be a mapping of keys; allowed: " + ", ".join(TOP_LEVEL))
    _reject_interpolation(source, raw)
    for item in overrides:
        if "=" not in item:
            raise SpecError(source, item, "override must look like key=value; allowed: key=value, key=[a,b]")
        _reject_interpolation(source, item, item.split("=", 1)[0])
        key = item.split("=", 1)[0]
        if key.split(".")[0] not in TOP_LEVEL:
            raise _unknown(source, key, TOP_LEVEL)
    if overrides:
        try:
            merged = OmegaConf.merge(OmegaConf.create(raw), OmegaConf.from_dotlist(overrides))
            raw = OmegaConf.to_container(merged, resolve=False)
        except OmegaConfBaseException as e:
            raise SpecError(source, getattr(e, "full_key", "override") or "override", str(e).splitlines()[0]) from None
    return raw


def _section(source: str, raw: dict, name: str) -> dict:
    value = raw.get(name) or {}
    if not isinstance(value, TOP_LEVEL[name]):
        raise SpecError(source, name, f"must be a {TOP_LEVEL[name].__name__}")
    for key, v in value.items():
        if name in SECTIONS:
            if key not in SECTIONS[name]:
                raise _unknown(source, f"{name}.{key}", SECTIONS[name])
            if not isinstance(v, SECTIONS[name][key]) or isinstance(v, bool):
                raise SpecError(source, f"{name}.{key}", f"got {v!r} of the wrong type")
    return value


def _search_cell(source: str, search: dict, experiment: Experiment) -> dict:
    out = {}
    for key, value in search.items():
        if key not in SEARCH_KEYS:
            raise _unknown(source, f"search.{key}", SEARCH_KEYS)
        if key == "param" and value != "width":
            raise SpecError(source, "search.param", f"got {value!r}; allowed: width")
        if key == "strategy":
            if value not in STRATEGIES:
                raise SpecError(source, "search.strategy", f"got {value!r}; allowed: {', '.join(STRATEGIES)}")
            if value == "kary" and "arity" not in search:
                out["search_arity"] = 3
            if value == "binary":
                out["search_arity"] = 1
        elif SEARCH_KEYS[key]:
            out[SEARCH_KEYS[key]] = value
    if search.get("strategy") == "binary" and search.get("arity", 1) != 1:
        raise SpecError(source, "search.arity", "binary search probes one width per round; allowed: 1, or strategy kary")
    return out


def _points(source: str, grid: dict, zipped: dict, seeds: list) -> list[dict]:
    for block, table in (("grid", grid), ("zip", zipped)):
        for key, values in table.items():
            if not isinstance(values, list) or not values:
                raise SpecError(source, f"{block}.{key}", "must be a non-empty list of values")
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        raise SpecError(source, "zip", f"lists must have equal lengths, got {sorted(lengths)}")
    zip_points = [dict(zip(zipped, combo)) for combo in zip(*zipped.values())] or [{}]
    grid_points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    seed_points = [{"seed": s} for s in seeds] or [{}]
    return [{**g, **z, **s} for g in grid_points for z in zip_points for s in seed_points]


def _where(key: str, grid: dict, zipped: dict, search: dict) -> str:
    """The key as the user wrote it: ``grid.d``, ``search.high``, ``fixed.threshold``..."""
    if key in grid or key in zipped:
        return f"{'grid' if key in grid else 'zip'}.{key}"
    spelled = {cell_key: f"search.{k}" for k, cell_key in SEARCH_KEYS.items() if cell_key}
    return spelled[key] if key in search and key in spelled else f"fixed.{key}"


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Spec:
    """Read, override and validate a sweep file; raise SpecError on the first problem."""
    path = Path(path)
    source = str(path)
    raw = _read(path, list(overrides))
    for key in raw:
        if key not in TOP_LEVEL:
            raise _unknown(source, str(key), TOP_LEVEL)
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise SpecError(source, "name", f"got {name!r}; allowed: letters, digits, '_', '-', '.' (no path separators or '..')")
    kind = raw.get("experiment")
    if kind not in REGISTRY:
        raise SpecError(source, "experiment", f"got {kind!r}; allowed: {', '.join(sorted(REGISTRY))}")
    experiment = REGISTRY[kind]
    fixed, grid, zipped = (_section(source, raw, s) for s in ("fixed", "grid", "zip"))
    seeds = raw.get("seeds") or []
    if not isinstance(seeds, list):
        raise SpecError(source, "seeds", "must be a list of integers")
    search = _search_cell(source, _section(source, raw, "search"), experiment)
    sections = {s: _section(source, raw, s) for s in SECTIONS}
    for block, table in (("fixed", fixed), ("grid", grid), ("zip", zipped)):
        for key in table:
            if key not in experiment.params:
                raise _unknown(source, f"{block}.{key}", experiment.params)
    cells, seen = [], set()
    for point in _points(source, grid, zipped, seeds):
        try:
            cell = experiment.resolve({**fixed, **search, **point})
        except KeyError as e:
            raise _unknown(source, str(e.args[0]), experiment.params) from None
        except ValueError as e:
            key, _, message = str(e).partition(": ")
            raise SpecError(source, _where(key, grid, zipped, search), message) from None
        frozen = tuple(sorted(cell.items()))
        if frozen not in seen:
            seen.add(frozen)
            cells.append(cell)
    if not cells:
        raise SpecError(source, "grid", "the sweep has no cells; allowed: non-empty lists")
    res, pack = sections["resources"], sections["packing"]
    num_cpus, num_gpus = res.get("num_cpus", 1), res.get("num_gpus", 0)
    if num_cpus <= 0 or num_gpus < 0:
        raise SpecError(source, "resources", f"got num_cpus={num_cpus}, num_gpus={num_gpus}; allowed: num_cpus > 0, num_gpus >= 0")
    if pack.get("probes_per_task", 8) < 1:
        raise SpecError(source, "packing.probes_per_task", "allowed: an integer >= 1")
    return Spec(
        name=name, experiment=experiment, cells=cells, source=source,
        num_cpus=float(num_cpus), num_gpus=float(num_gpus), max_retries=res.get("max_retries", 3),
        probes_per_task=pack.get("probes_per_task", 8),
        tracking_uri=sections["tracking"].get("uri"), tracking_experiment=sections["tracking"].get("experiment"),
        results_root=sections["storage"].get("root", "results"), cluster_address=sections["cluster"].get("address"),
        raw=raw,
    )
