"""Sphinx configuration of nbloss's API reference, built from the docstrings:

    python -m sphinx -W -b html docs/api docs/_build/html
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))  # this checkout's nbloss

project = "nbloss"
author = "nbloss contributors"
extensions = ["sphinx.ext.autodoc", "numpydoc"]
exclude_patterns = ["_build"]
html_theme = "alabaster"

# signatures show the aliases' names (nbloss/_typing.py), not their expansions
autodoc_type_aliases = {name: f"nbloss._typing.{name}" for name in
                        ("Operand", "Param", "Reduction", "Stream", "Legacy", "Weight")}
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
