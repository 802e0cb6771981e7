"""Sphinx configuration; built with warnings as errors by ./dev test."""

project = "sioworkers"
author = "sioworkers developers"
release = "2.0.0.dev0"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.viewcode"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
exclude_patterns = ["_build"]
html_theme = "alabaster"
