"""Stand-in for plotly (Kaixhin/PlaNet's utils.py imports it; see experiments/kaixhin/README.md)."""

from . import graph_objs, offline  # noqa: F401
