"""The results contract: the metric catalog, the results loader and the Python API."""
