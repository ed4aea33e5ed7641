"""factmlp: the science of fact-storing MLPs, usable alone from a notebook.

numpy/torch only. Import the submodules you need, e.g.
``from factmlp import factsets, constructions, train``.
"""
