"""Sweep specs: a YAML file plus ``key=value`` overrides, validated into cells before anything runs.

The YAML is data only: interpolations (``${...}``, which could read the environment) are refused,
the experiment is chosen from a fixed registry by name, and every cell parameter is checked
against the experiment's declared parameters, so a typo fails at once with a did-you-mean. Values
must also fit the records they end up in (int64 columns, Ray's resource units), and the file must
be small enough to expand (``orchestrator/sweepyaml.py``; ``MAX_CELLS`` cells at most).
"""
from __future__ import annotations

import difflib
import hashlib
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from orchestrator import executors, registry
from orchestrator.experiment import Experiment, ParamError, is_set
from orchestrator.errors import SpecError
from orchestrator.redact import redact, redact_data
from orchestrator.paths import check_override, check_path, path_problem
from orchestrator.names import NAME_PATTERN, NAME_RULE, is_name  # noqa: F401 - NAME_PATTERN for the CLI
from orchestrator.sweepyaml import Refused, read_yaml

SEARCH_KEYS = {"param": None, "low": "search_low", "high": "search_high", "arity": "search_arity",
               "strategy": None, "threshold": "threshold", "verify": "search_verify", "predict": None,
               "early_stop": None}
STRATEGIES = ("binary", "kary")
MAX_CELLS = 100_000  # far above what a sweep can run; refused before the grid is expanded
INT64 = (-2 ** 63, 2 ** 63 - 1)  # the Parquet columns every integer parameter is recorded in
# Ray counts resources in units of 1e-4; a task asking for more than this is a typo, not a machine.
RESOURCE_LIMITS = {"num_cpus": (1e-4, 1e6), "num_gpus": (1e-4, 1e6), "max_retries": (-1, 1000),
                   "probes_per_task": (1, 1_000_000), "probe_timeout_s": (0.0, 1e7)}


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
    executor: str = executors.DEFAULT  # where probes run, by name (orchestrator.executors); --executor wins
    raw: dict = field(default_factory=dict, repr=False)
    overrides: tuple[str, ...] = ()
    profile: str | None = None
    file_sha256: str = ""
    predict: bool = True  # open each cell's search around a prediction from the finished cells
    early_stop: bool = True  # a probe may stop once its outcome is decided (factmlp/early_stop.py)
    probe_timeout_s: float | None = None  # a probe running longer becomes a failed row (None: no limit)

    @property
    def varying(self) -> tuple[str, ...]:
        """Cell parameters whose value differs between this file's cells, in parameter order: what a
        table must show so that no two of its rows look alike."""
        return varying_keys(self.cells, self.experiment.params)


def varying_keys(cells: list[dict], keys) -> tuple[str, ...]:
    """Keys (in the order of ``keys``) that take more than one value across the cells that have them."""
    return tuple(k for k in keys if len({repr(c.get(k)) for c in cells if is_set(c.get(k))}) > 1)


TOP_LEVEL = {
    "name": str, "experiment": str, "fixed": dict, "grid": dict, "zip": dict, "seeds": list, "search": dict,
    "resources": dict, "packing": dict, "tracking": dict, "storage": dict, "cluster": dict, "description": str,
    "profiles": dict, "profile": str,
}
SECTIONS = {
    "resources": {"num_cpus": (int, float), "num_gpus": (int, float), "max_retries": int,
                  "probe_timeout_s": (int, float, type(None))},
    "packing": {"probes_per_task": int},
    "tracking": {"uri": (str, type(None)), "experiment": (str, type(None))},
    "storage": {"root": str},
    "cluster": {"address": (str, type(None)), "executor": str},
}


def _unknown(source: str, key: str, allowed, word: str | None = None) -> SpecError:
    close = difflib.get_close_matches(word or key.rsplit(".", 1)[-1], list(allowed), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SpecError(source, key, f"unknown key{hint}; allowed: {', '.join(sorted(allowed))}")


def _check_values(source: str, node: Any, path: str = "") -> None:
    """Plain data only: string keys, no interpolation, and integers that fit the int64 they are stored in."""
    if isinstance(node, dict):
        for k, v in node.items():
            here = f"{path}.{k}" if path else str(k)
            if not isinstance(k, str):
                raise SpecError(source, here, f"key {k!r} is a {type(k).__name__}; allowed: string keys")
            _check_values(source, v, here)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _check_values(source, v, f"{path}[{i}]")
    elif isinstance(node, str) and "${" in node:
        raise SpecError(source, path, "interpolations (${...}) are not allowed; allowed: plain values")
    elif isinstance(node, int) and not isinstance(node, bool) and not INT64[0] <= node <= INT64[1]:
        raise SpecError(source, path, f"got {node}, more than the results can store; "
                                      f"allowed: an integer in [{INT64[0]}, {INT64[1]}] (int64)")
    elif not isinstance(node, (str, int, float, bool, type(None))):
        raise SpecError(source, path, f"got a YAML {type(node).__name__} ({node!r}); "
                                      "allowed: strings, numbers, booleans, null, lists and mappings")


def _read(path: Path, overrides: list[str]) -> tuple[dict, str | None, str]:
    """The merged sweep (file, then profile, then overrides), the profile chosen and the file's hash."""
    source = str(path)
    if problem := path_problem(source):
        raise SpecError(repr(source)[1:-1], "-", f"cannot read the sweep file: {problem}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError(source, "-", f"cannot read the sweep file ({e.strerror}); "
                                     "allowed: a readable YAML file") from None
    try:
        raw = read_yaml(data)
    except Refused as e:
        raise SpecError(source, e.where, f"{e.problem}; allowed: {e.allowed}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "-"
        problem = str(getattr(e, "problem", None) or e).splitlines()[0]
        raise SpecError(source, where, f"malformed YAML ({problem}); allowed: plain YAML data (mappings, lists, "
                                       "strings, numbers, booleans, null) without tags") from None
    if not isinstance(raw, dict):
        raise SpecError(source, "-", "the sweep file must be a mapping of keys; allowed: " + ", ".join(TOP_LEVEL))
    _check_values(source, raw)
    for item in overrides:
        if "=" not in item or not item.split("=", 1)[0]:
            raise SpecError(source, item, "override must look like key=value; allowed: key=value, key=[a,b]")
        check_override(source, item)  # before OmegaConf, which recurses once per level of nesting
        _check_values(source, item, item.split("=", 1)[0])
        key = item.split("=", 1)[0]
        if key.split(".")[0] not in TOP_LEVEL:
            raise _unknown(source, key, TOP_LEVEL, key.split(".")[0])
        try:
            OmegaConf.merge(OmegaConf.create(raw), OmegaConf.from_dotlist([item]))
        except (OmegaConfBaseException, yaml.YAMLError, TypeError) as e:
            problem = str(getattr(e, "problem", None) or e).splitlines()[0]
            raise SpecError(source, key, f"cannot apply the override ({problem}); allowed: key=value, key=[a,b] "
                                         "with a value of the same kind as in the file") from None
    chosen = None
    try:
        dotlist = OmegaConf.from_dotlist(overrides)
        chosen = OmegaConf.merge(OmegaConf.create(raw), dotlist).get("profile")
        profiles = raw.pop("profiles", None) or {}
        raw.pop("profile", None)
        if not isinstance(profiles, dict):
            raise SpecError(source, "profiles", f"got {profiles!r}; allowed: a mapping of profile name: partial sweep")
        named = any(item.split("=", 1)[0] == "profile" for item in overrides)  # `profile=` names nothing
        if (chosen is not None or named) and (not isinstance(chosen, str) or chosen not in profiles):
            raise SpecError(source, "profile", f"got {chosen!r}; allowed: {', '.join(sorted(profiles)) or 'none defined'}")
        if chosen is not None and not isinstance(profiles[chosen], dict):
            raise SpecError(source, f"profiles.{chosen}", f"got {profiles[chosen]!r}; allowed: a mapping of sweep keys")
        if chosen is not None and {"profile", "profiles"} & set(profiles[chosen]):
            raise SpecError(source, f"profiles.{chosen}", "a profile cannot select or define profiles; "
                                                          "allowed: sweep keys other than profile and profiles")
        layers = [OmegaConf.create(raw)] + ([OmegaConf.create(profiles[chosen])] if chosen else []) + [dotlist]
        merged = OmegaConf.to_container(OmegaConf.merge(*layers), resolve=False)
    except OmegaConfBaseException as e:
        raise SpecError(source, getattr(e, "full_key", "override") or "override", str(e).splitlines()[0]) from None
    except TypeError as e:  # a profile or override replaces a mapping with a list, or the reverse
        raise SpecError(source, f"profiles.{chosen}" if chosen else "override",
                        f"{e}; allowed: values of the same kind as in the file") from None
    merged.pop("profile", None)
    _check_values(source, merged)  # overrides are strings until merged
    return merged, chosen, hashlib.sha256(data).hexdigest()


def _section(source: str, raw: dict, name: str) -> dict:
    value = {} if raw.get(name) is None else raw[name]
    if not isinstance(value, TOP_LEVEL[name]):
        keys = SECTIONS.get(name) or (SEARCH_KEYS if name == "search" else None)
        what = (f"with keys {', '.join(keys)}" if keys
                else "of parameter: " + ("value" if name == "fixed" else "list of values"))
        raise SpecError(source, name, f"got {value!r}; allowed: a mapping {what}")
    for key, v in value.items():
        if name in SECTIONS:
            if key not in SECTIONS[name]:
                raise _unknown(source, f"{name}.{key}", SECTIONS[name])
            if not isinstance(v, SECTIONS[name][key]) or isinstance(v, bool):
                kinds = SECTIONS[name][key] if isinstance(SECTIONS[name][key], tuple) else (SECTIONS[name][key],)
                names = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
                raise SpecError(source, f"{name}.{key}", f"got {v!r} of the wrong type; allowed: {names}")
    if name == "storage" and value.get("root") == "":
        raise SpecError(source, "storage.root", "got ''; allowed: a folder path (default results)")
    return value


def _flatten(source: str, block: str, table: dict, namespaces: tuple[str, ...]) -> dict:
    """A method's options may be nested under its name: ``encoder_decoder: {bucket_size: 8}`` is the
    parameter ``encoder_decoder_bucket_size``."""
    out, written = {}, {}
    for key, value in table.items():
        nested = value.items() if key in namespaces and isinstance(value, dict) else [(None, value)]
        for option, v in nested:
            name = key if option is None else f"{key}_{option}"
            spelled = f"{block}.{key}" if option is None else f"{block}.{key}.{option}"
            if name in out:
                raise SpecError(source, f"{block}.{name}", f"given twice, as {written[name]} and as {spelled}; "
                                "allowed: one of them (an override must name the key as the file writes it)")
            out[name], written[name] = v, spelled
    return out


def _search_cell(source: str, search: dict, experiment: Experiment) -> dict:
    """The search block as cell parameters (``predict`` and ``early_stop`` are operational: they change
    which probes run and for how many epochs, never an answer, so they stay out of the cell)."""
    searched = getattr(experiment.search, "param", None)
    out = {}
    for key, value in search.items():
        if key not in SEARCH_KEYS:
            raise _unknown(source, f"search.{key}", SEARCH_KEYS)
        if key == "param" and value != searched:
            raise SpecError(source, "search.param", f"got {value!r}; allowed: "
                                                    f"{searched or f'none (experiment {experiment.name} has no search)'}")
        if key in ("predict", "early_stop") and not isinstance(value, bool):
            raise SpecError(source, f"search.{key}", f"got {value!r}; allowed: true or false")
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
        raise SpecError(source, "search.arity", "binary search probes one value per round; allowed: 1, or strategy kary")
    return out


def _points(source: str, grid: dict, zipped: dict, seeds: list) -> list[dict]:
    for block, table in (("grid", grid), ("zip", zipped)):
        for key, values in table.items():
            if not isinstance(values, list) or not values:
                raise SpecError(source, f"{block}.{key}", f"got {values!r}; allowed: a non-empty list of values")
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        got = ", ".join(f"{k}: {len(v)}" for k, v in zipped.items())
        raise SpecError(source, "zip", f"got lists of lengths {got}; allowed: lists of equal length")
    sizes = [len(v) for v in grid.values()] + [max(lengths, default=1), len(seeds) or 1]
    if math.prod(sizes) > MAX_CELLS:
        raise SpecError(source, "grid", f"got {' x '.join(map(str, sizes))} = {math.prod(sizes)} cells "
                                        f"(grid x zip x seeds); allowed: at most {MAX_CELLS} cells per sweep")
    zip_points = [dict(zip(zipped, combo)) for combo in zip(*zipped.values())] or [{}]
    grid_points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    seed_points = [{"seed": s} for s in seeds] or [{}]
    return [{**g, **z, **s} for g in grid_points for z in zip_points for s in seed_points]


TRACKING_SCHEMES = re.compile(r"(sqlite:///.+|https?://[^/\s]+.*|(postgresql|mysql|mssql)(\+\w+)?://.+)", re.S)


def tracking_uri_problem(uri: str) -> str | None:
    """What is wrong with a tracking URI, or None. MLflow 3's file store (``mlruns``, ``file:``) is in
    maintenance mode and refuses new runs, so only database and server URIs are accepted."""
    if TRACKING_SCHEMES.fullmatch(uri) and not path_problem(uri):  # no NUL or control character either
        return None
    return (f"got {redact(uri)!r}; allowed: null (sqlite under storage.root), sqlite:///PATH, http(s)://HOST:PORT of an "
            "MLflow server, or a postgresql/mysql/mssql:// database URI")


def root_problem(root: str, tracking_uri: str | None) -> tuple[str, str] | None:
    """(key, message) when ``storage.root`` names no usable place, or an object store with no tracking URI:
    MLflow's default is a sqlite file beside the results, which an object store cannot hold."""
    from orchestrator.location import ALLOWED, SCHEMES, is_remote, local_problem
    if problem := path_problem(root) or local_problem(root):
        return ("storage.root", problem)
    if not is_remote(root):
        return None
    if root.split("://", 1)[0].lower() not in SCHEMES:
        return ("storage.root", f"got {root!r}; allowed: {ALLOWED}")
    if tracking_uri is None:
        return ("tracking.uri", f"got null with storage.root {root!r}; allowed: http(s)://HOST:PORT of an MLflow "
                                "server (no sqlite file is made on an object store), or sqlite:///LOCAL_PATH")
    return None


def _where(key: str, grid: dict, zipped: dict, search: dict, seeds: list) -> str:
    """The key as the user wrote it: ``grid.d``, ``search.high``, ``seeds``, ``fixed.threshold``..."""
    if key == "seed" and seeds:
        return "seeds"
    if key in grid or key in zipped:
        return f"{'grid' if key in grid else 'zip'}.{key}"
    spelled = {cell_key: f"search.{k}" for k, cell_key in SEARCH_KEYS.items() if cell_key}
    return spelled[key] if key in search and key in spelled else f"fixed.{key}"


def load_spec(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Spec:
    """Read, override and validate a sweep file; raise SpecError on the first problem."""
    path = Path(path)
    source = str(path)
    raw, profile, file_sha256 = _read(path, list(overrides))
    for key in raw:
        if key not in TOP_LEVEL:
            raise _unknown(source, str(key), TOP_LEVEL)
    name = raw.get("name")
    if not is_name(name):
        raise SpecError(source, "name", f"got {name!r}; allowed: {NAME_RULE}")
    kind = raw.get("experiment")
    if not isinstance(kind, str) or kind not in registry.names():
        raise SpecError(source, "experiment", f"got {kind!r}; allowed: {', '.join(registry.names())}")
    experiment = registry.get(kind)
    if not isinstance(raw.get("description", ""), str):
        raise SpecError(source, "description", f"got {raw['description']!r}; allowed: a string")
    fixed, grid, zipped = (_flatten(source, s, _section(source, raw, s), experiment.namespaces())
                           for s in ("fixed", "grid", "zip"))
    seeds = [] if raw.get("seeds") is None else raw["seeds"]
    if not isinstance(seeds, list):
        raise SpecError(source, "seeds", f"got {seeds!r}; allowed: a list of integers")
    search_block = _section(source, raw, "search")
    search = _search_cell(source, search_block, experiment)
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
        except ParamError as e:
            raise SpecError(source, _where(e.key, grid, zipped, search, seeds), e.message) from None
        frozen = tuple(sorted(cell.items()))
        if frozen not in seen:
            seen.add(frozen)
            cells.append(cell)
    if not cells:
        raise SpecError(source, "grid", "the sweep has no cells; allowed: non-empty lists")
    for key in experiment.input_files:  # files the cells read: a path the file system can take
        for cell in cells:
            if is_set(cell.get(key)):
                check_path(source, _where(key, grid, zipped, search, seeds), cell[key])
    res, pack = sections["resources"], sections["packing"]
    num_cpus, num_gpus = res.get("num_cpus", 1), res.get("num_gpus", 0)
    low, high = RESOURCE_LIMITS["num_cpus"]
    if not low <= num_cpus <= high:
        raise SpecError(source, "resources.num_cpus", f"got {num_cpus}; allowed: a finite number in [{low}, {high:g}] "
                                                      "(Ray counts in units of 0.0001)")
    if not (num_gpus == 0 or low <= num_gpus <= high):
        raise SpecError(source, "resources.num_gpus", f"got {num_gpus}; allowed: 0 or a finite number in "
                                                      f"[{low}, {high:g}] (Ray counts in units of 0.0001)")
    low, high = RESOURCE_LIMITS["max_retries"]
    if not low <= res.get("max_retries", 3) <= high:
        raise SpecError(source, "resources.max_retries",
                        f"got {res['max_retries']}; allowed: an integer in [0, {high}], or -1 (no limit)")
    low, high = RESOURCE_LIMITS["probes_per_task"]
    if not low <= pack.get("probes_per_task", 8) <= high:
        raise SpecError(source, "packing.probes_per_task",
                        f"got {pack['probes_per_task']}; allowed: an integer in [{low}, {high}]")
    timeout = res.get("probe_timeout_s")
    low, high = RESOURCE_LIMITS["probe_timeout_s"]
    if timeout is not None and not (math.isfinite(timeout) and low < timeout <= high):
        raise SpecError(source, "resources.probe_timeout_s", f"got {timeout}; allowed: null (no limit) or seconds "
                                                             f"in ({low:g}, {high:g}] per probe")
    executor = executors.check_name(source, "cluster.executor", sections["cluster"].get("executor", executors.DEFAULT))
    uri = sections["tracking"].get("uri")
    if uri is not None and (problem := tracking_uri_problem(uri)):
        raise SpecError(source, "tracking.uri", problem)
    root = sections["storage"].get("root", "results")
    if problem := root_problem(root, uri):
        raise SpecError(source, *problem)
    return Spec(
        name=name, experiment=experiment, cells=cells, source=source,
        num_cpus=float(num_cpus), num_gpus=float(num_gpus), max_retries=res.get("max_retries", 3),
        probes_per_task=pack.get("probes_per_task", 8),
        tracking_uri=sections["tracking"].get("uri"), tracking_experiment=sections["tracking"].get("experiment"),
        results_root=sections["storage"].get("root", "results"), cluster_address=sections["cluster"].get("address"),
        executor=executor,
        raw=redact_data(raw), overrides=tuple(redact(o) for o in overrides), profile=profile,  # shown and stored
        file_sha256=file_sha256,
        predict=search_block.get("predict", True),
        early_stop=search_block.get("early_stop", True),
        probe_timeout_s=None if timeout is None else float(timeout),
    )


def check_recorded_kind(spec: Spec, store) -> None:
    """A sweep name holds one experiment kind: rows of two kinds under one name would mix in one partition.
    ``store`` is the sweep's ``orchestrator.store.Store``; only its recorded kinds are read."""
    other = store.kinds(spec.name) - {spec.experiment.name}
    if other:
        held = ", ".join(sorted(other))
        raise SpecError(spec.source, "experiment", f"got {spec.experiment.name!r}, but sweep {spec.name!r} under "
                                                   f"{store.root} holds {held} results; allowed: {held}, or "
                                                   "another name for this sweep")
