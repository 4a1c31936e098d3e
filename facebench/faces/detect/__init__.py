"""Face detectors returning boxes, scores and five landmarks."""

from facebench.faces.detect.base import Detection, Detector, create_detector, select_face

__all__ = ["Detection", "Detector", "create_detector", "select_face"]
