"""Model zoo: face-recognition architectures, trained-weight loading and ONNX export.

``get_model(name, embedding_size=None)`` builds an architecture, ``list_models()`` lists them,
``describe(name)`` adds params and GMAC. Weights: :mod:`facebench.zoo.weights`; ONNX:
:mod:`facebench.zoo.export`.
"""

from facebench.zoo.registry import ModelInfo, describe, get_info, get_model, list_models

__all__ = ["ModelInfo", "describe", "get_info", "get_model", "list_models"]
