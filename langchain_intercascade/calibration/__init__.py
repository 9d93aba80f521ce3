"""Threshold calibration for a two-model cascade, one module per concern.

Module map:

- ``threshold``: :class:`ThresholdCalibration`, :func:`clopper_pearson_upper`,
  :func:`calibrate_threshold` (a risk level certified by fixed-sequence
  Clopper-Pearson tests), :func:`threshold_for_deferral_rate` (a plain
  quantile), and the checks of their inputs.
- ``online``: :class:`OnlineRecalibrator`, opt-in recalibration on a sliding
  window of observations.

Calibration is statistics only: it imports nothing else of the package, so the
cascade's options and graph build on it. Running a cascade over labelled
examples to collect confidences is evaluation's
(:func:`~langchain_intercascade.evaluation.collect_confidences`).
"""

from langchain_intercascade.calibration.online import OnlineRecalibrator
from langchain_intercascade.calibration.threshold import (
    ThresholdCalibration,
    calibrate_threshold,
    clopper_pearson_upper,
    threshold_for_deferral_rate,
)

__all__ = [
    "OnlineRecalibrator",
    "ThresholdCalibration",
    "calibrate_threshold",
    "clopper_pearson_upper",
    "threshold_for_deferral_rate",
]
