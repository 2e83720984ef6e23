"""Sphinx configuration for interlock's documentation site (build: see README)."""

project = "interlock"
author = "interlock developers"
copyright = "2026, interlock developers"

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
intersphinx_mapping = {}  # offline builds: no inventories fetched
html_theme = "alabaster"
html_title = "interlock"
nitpicky = False
