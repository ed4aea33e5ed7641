"""Real embeddings of a language model as fact sets: table files, captures from a model, their cache.

safetensors (the file format), tables (loading any table file safely), models (which models may be
named, and loading them), capture (rows of a model over real text), cache (each capture once per
machine) and geometries (the llm_* fact-set geometries). Of the package it uses only
``factmlp.factsets`` and the typed options of ``factmlp.options``.
"""
