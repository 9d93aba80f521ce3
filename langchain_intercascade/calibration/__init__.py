"""Threshold calibration for a two-model cascade, one module per concern.

Module map:

- ``threshold``: :class:`ThresholdCalibration`, :func:`clopper_pearson_upper`,
  :func:`calibrate_threshold` (a risk level certified by fixed-sequence
  Clopper-Pearson tests), :func:`threshold_for_deferral_rate` (a plain
  quantile), and the checks of their inputs.
- ``online``: :class:`OnlineRecalibrator`, opt-in recalibration on a sliding
  window of observations.
- ``collection``: :func:`collect_confidences` and :func:`acollect_confidences`,
  which run a compiled cascade's weak model and judge over labelled examples,
  and :class:`CollectedConfidences`, what they return.

Only ``collection`` touches the rest of the package, and only lazily (the graph
imports this package), so calibration can be used and tested on its own.
"""

from langchain_intercascade.calibration.collection import (
    CollectedConfidences,
    acollect_confidences,
    collect_confidences,
)
from langchain_intercascade.calibration.online import OnlineRecalibrator
from langchain_intercascade.calibration.threshold import (
    ThresholdCalibration,
    calibrate_threshold,
    clopper_pearson_upper,
    threshold_for_deferral_rate,
)

__all__ = [
    "CollectedConfidences",
    "OnlineRecalibrator",
    "ThresholdCalibration",
    "acollect_confidences",
    "calibrate_threshold",
    "clopper_pearson_upper",
    "collect_confidences",
    "threshold_for_deferral_rate",
]
