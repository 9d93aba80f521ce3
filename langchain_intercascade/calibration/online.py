"""Recalibrating the threshold as the cascade runs: :class:`OnlineRecalibrator`."""

from __future__ import annotations

import math
import threading
from collections import deque

import numpy as np

from langchain_intercascade.calibration.threshold import (
    ThresholdCalibration,
    _check_open_unit,
    _check_positive_int,
    calibrate_threshold,
)


class OnlineRecalibrator:
    """Opt-in online recalibration of the threshold from a sliding window.

    Each observation is a ``(confidence, agreed)`` pair. Every ``every``-th
    observation, once the window holds at least ``min_samples`` pairs, the
    threshold is recalibrated with :func:`calibrate_threshold` on the window.

    Two caveats about the labels this sees:

    * ``agreed`` (the weak and strong answers agree) is a proxy for "the weak
      answer was correct". It assumes the strong model is right. Where the
      strong model is wrong, the calibration is wrong too.
    * Only deferred queries get a strong answer, so only they produce labels.
      Fed only with deferred queries, the window holds samples from below the
      current threshold: the low-confidence region, not the region the
      threshold decides about. The resulting calibration is biased unless
      some accepted queries are also sent to the strong model for audit and
      observed here.

    All methods are thread-safe. Recalibration runs under the lock, so an
    ``observe`` call that triggers it blocks other callers for its duration
    (milliseconds for windows of a few thousand samples).

    Args:
        alpha: Target error rate among accepted queries, in (0, 1).
        initial_threshold: Threshold used until the first recalibration.
        delta: Failure probability of the guarantee, in (0, 1).
        window: Maximum number of recent observations kept.
        every: Recalibrate on every ``every``-th observation.
        min_samples: Observations the window must hold before recalibrating.
        min_accepted: Passed to :func:`calibrate_threshold`.

    Raises:
        ValueError: If a parameter is out of range, or if
            ``min_accepted <= min_samples <= window`` does not hold.
    """

    def __init__(
        self,
        alpha: float,
        *,
        initial_threshold: float,
        delta: float = 0.1,
        window: int = 500,
        every: int = 50,
        min_samples: int = 100,
        min_accepted: int = 10,
    ) -> None:
        _check_open_unit(alpha, "alpha")
        _check_open_unit(delta, "delta")
        for value, name in (
            (window, "window"),
            (every, "every"),
            (min_samples, "min_samples"),
            (min_accepted, "min_accepted"),
        ):
            _check_positive_int(value, name)
        if min_samples > window:
            raise ValueError(
                f"min_samples ({min_samples}) must be <= window ({window}), or "
                "recalibration could never run"
            )
        if min_accepted > min_samples:
            raise ValueError(
                f"min_accepted ({min_accepted}) must be <= min_samples ({min_samples})"
            )
        if math.isnan(initial_threshold):
            raise ValueError("initial_threshold must not be NaN")
        self._alpha = alpha
        self._delta = delta
        self._every = every
        self._min_samples = min_samples
        self._min_accepted = min_accepted
        self._initial_threshold = float(initial_threshold)
        self._window: deque[tuple[float, bool]] = deque(maxlen=window)
        self._n_observed = 0
        self._calibration: ThresholdCalibration | None = None
        self._lock = threading.Lock()

    @property
    def threshold(self) -> float:
        """Current threshold: the initial one until the first recalibration."""
        with self._lock:
            if self._calibration is None:
                return self._initial_threshold
            return self._calibration.threshold

    @property
    def calibration(self) -> ThresholdCalibration | None:
        """Latest calibration, or None before the first recalibration."""
        with self._lock:
            return self._calibration

    @property
    def n_observed(self) -> int:
        """Total number of observations seen, including those evicted."""
        with self._lock:
            return self._n_observed

    @property
    def n_held(self) -> int:
        """Number of observations currently in the window."""
        with self._lock:
            return len(self._window)

    def observe(self, confidence: float, agreed: bool) -> ThresholdCalibration | None:
        """Record one labelled query and recalibrate when due.

        Args:
            confidence: Judge confidence for the query, finite and in [0, 1].
            agreed: Whether the weak and strong answers agreed (proxy label).

        Returns:
            The new calibration when this observation triggered one, else None.

        Raises:
            ValueError: If ``confidence`` is not finite or outside [0, 1]. The
                observation is not recorded, so one bad value cannot break
                later recalibrations.
        """
        value = float(confidence)
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"confidence must be finite and in [0, 1], got {value}")
        with self._lock:
            self._window.append((value, bool(agreed)))
            self._n_observed += 1
            if self._n_observed % self._every or len(self._window) < self._min_samples:
                return None
            confs, labels = zip(*self._window, strict=True)
            self._calibration = calibrate_threshold(
                np.fromiter(confs, dtype=np.float64, count=len(confs)),
                np.fromiter(labels, dtype=np.bool_, count=len(labels)),
                alpha=self._alpha,
                delta=self._delta,
                min_accepted=self._min_accepted,
            )
            return self._calibration
