"""Stand-in for plotly.graph_objs: figures are plain records."""

from . import scatter  # noqa: F401


class Scatter:
    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)
