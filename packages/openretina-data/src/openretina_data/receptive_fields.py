"""Where each neuron looks: receptive-field centres from response-weighted stimulus averages.

A Gaussian readout learns each neuron's position by gradient descent from near the image centre.
On large frames with small receptive fields that search takes many epochs (or fails); the
spike-triggered average (STA) finds the same place in one pass over the training data. The centres
found here start the readout positions (``openretina train``'s ``readout_init: sta``).

Only training frames' responses are used (validation and test responses never enter), and
responses are centred per neuron, so the mean image does not masquerade as a receptive field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from openretina_data.records import Movie

# A peak counts as a receptive field when it stands this many standard deviations above the
# largest peak pure noise would give on a map of that many pixels (see `peak_significance`);
# responses shuffled in time reached 3.8 at most on the retina zoo, real cells 6.3 or more.
DEFAULT_MIN_SIGNIFICANCE = 5.0


@dataclass(frozen=True)
class ReceptiveFieldCentres:
    """Per neuron: the centre `(row, col)` in pixels (NaN where no clear peak) and how clear it is."""

    centres: np.ndarray  # (N, 2) float, pixel coordinates; NaN rows: no clear receptive field
    significance: np.ndarray  # (N,) the peak's margin over noise, in standard deviations
    frames_used: int

    @property
    def found(self) -> np.ndarray:
        """(N,) bool: neurons with a clear peak."""
        return ~np.isnan(self.centres[:, 0])


def response_weighted_average(
    movie: Movie,
    responses: np.ndarray,
    use: np.ndarray,
    lags: Sequence[int],
    block_frames: int = 1024,
) -> np.ndarray:
    """(N, L, C, H, W): for each lag, the average stimulus `lag` frames before a response, each
    frame weighted by the neuron's centred response (its STA at those lags).

    `use` (T,) bool marks the response frames that may enter (the training frames); the stimulus
    frames before them are read whatever their split, as the model itself sees them.
    """
    lags = [int(lag) for lag in lags]
    if not lags or min(lags) < 0:
        raise ValueError(f"lags must be non-negative frame counts, got {lags}.")
    responses = np.asarray(responses, dtype=np.float64)
    n_neurons, n_frames = responses.shape
    if len(movie) != n_frames or use.shape != (n_frames,):
        raise ValueError(
            f"movie ({len(movie)} frames), responses ({n_frames}) and use ({use.shape}) must align."
        )
    weights = np.zeros_like(responses, dtype=np.float32)
    if use.any():
        centred = responses[:, use] - responses[:, use].mean(axis=1, keepdims=True)
        weights[:, use] = centred
    channels, height, width = movie.frame_shape
    total = np.zeros((n_neurons, len(lags), channels * height * width), dtype=np.float64)
    reach = max(lags)
    for start in range(0, n_frames, block_frames):
        stop = min(start + block_frames, n_frames)
        if not use[start:stop].any():
            continue
        first = max(0, start - reach)
        frames = movie.read(np.arange(first, stop)[None])[0]  # (C, L, H, W)
        flat = np.ascontiguousarray(frames.transpose(1, 0, 2, 3)).reshape(stop - first, -1)
        # Every lag's weights laid out against the block's frames, so one matrix product reads the
        # frames once (a product per lag was memory-bound and 4-8x slower).
        shifted = np.zeros((n_neurons, len(lags), stop - first), dtype=np.float32)
        for j, lag in enumerate(lags):
            begin = max(start, lag)  # response frames whose stimulus `lag` frames back exists
            if begin < stop:
                shifted[:, j, begin - lag - first : stop - lag - first] = weights[:, begin:stop]
        total += (shifted.reshape(n_neurons * len(lags), -1) @ flat).reshape(total.shape)
    count = max(int(use.sum()), 1)
    return (total / count).reshape(n_neurons, len(lags), channels, height, width).astype(np.float32)


def peak_significance(energy: np.ndarray, dof: int) -> np.ndarray:
    """(N,) how far each map's peak lies above what noise alone would reach, in standard deviations.

    Under noise a pixel's energy (a sum of `dof` squared STA values) is σ² χ²(dof); σ² is estimated
    from the map's median. The Wilson-Hilferty transform makes χ² values about normal, and the
    largest of P normal values is about sqrt(2 ln P), which is subtracted.
    """
    n = energy.shape[0]
    flat = energy.reshape(n, -1)
    k = float(max(dof, 1))
    chi2_median = k * (1 - 2 / (9 * k)) ** 3
    sigma2 = np.median(flat, axis=1) / chi2_median
    with np.errstate(divide="ignore", invalid="ignore"):
        peak = flat.max(axis=1) / sigma2 / k
        z = (np.cbrt(peak) - (1 - 2 / (9 * k))) / np.sqrt(2 / (9 * k))
    z = np.where(np.isfinite(z), z, np.where(flat.max(axis=1) > 0, np.inf, 0.0))
    return z - np.sqrt(2 * np.log(max(flat.shape[1], 2)))


def receptive_field_centres(
    sta: np.ndarray, min_significance: float = DEFAULT_MIN_SIGNIFICANCE, frames_used: int = 0
) -> ReceptiveFieldCentres:
    """Centres of the STA energy (summed over lags and channels) per neuron, to a fraction of a pixel.

    The peak pixel of the energy map, refined by the energy-weighted centroid of its 3x3
    neighbourhood; a neuron whose peak is not `min_significance` standard deviations above noise
    gets NaN.
    """
    n, lags, channels, height, width = sta.shape
    energy = np.square(sta.astype(np.float64)).sum(axis=(1, 2))  # (N, H, W)
    significance = peak_significance(energy, lags * channels)
    centres = np.full((n, 2), np.nan)
    rows, cols = np.mgrid[0:height, 0:width]
    for k in np.flatnonzero(significance >= min_significance):
        r, c = divmod(int(np.argmax(energy[k])), width)
        window = (slice(max(r - 1, 0), r + 2), slice(max(c - 1, 0), c + 2))
        mass = energy[k][window]
        centres[k] = [(mass * rows[window]).sum() / mass.sum(), (mass * cols[window]).sum() / mass.sum()]
    return ReceptiveFieldCentres(centres=centres, significance=significance, frames_used=frames_used)


def locate_receptive_fields(
    movie: Movie,
    responses: np.ndarray,
    use: np.ndarray,
    reach: int,
    max_lags: int = 8,
    max_frames: int = 30_000,
    min_significance: float = DEFAULT_MIN_SIGNIFICANCE,
    fine_lags: int = 32,
) -> ReceptiveFieldCentres:
    """Receptive-field centres of one session's neurons from its training frames.

    `reach` is how many frames back the model looks (its temporal kernels); up to `max_lags` lags
    spread over it are averaged. Neurons without a clear peak get a second look with up to
    `fine_lags` lags (every lag of a 30 Hz reach): retinal filters peak within a few frames, and a
    few lags spread over a long reach can miss the peak (issue 24: at 0.05 spikes per frame, 8 lags
    over 31 frames found 8 of 64 fields, every lag all 64). Only the neurons left over pay for it.
    Adjacent lags of a natural movie are nearly the same frame, so the second look's χ² count
    overstates how rare a noise peak is: responses shuffled in time passed it for 3-6 % of
    neurons on the retina zoo's movies (none in the first look). A neuron without a receptive
    field has nothing for its readout to find wherever it starts, so that is accepted; a stricter
    second look (the halves of the frames must agree) placed 57 instead of 64 and scored lower.
    At most `max_frames` training frames are used (the first ones), which keeps the cost at a
    fraction of one training epoch.
    """
    use = np.asarray(use, dtype=bool).copy()
    chosen = np.flatnonzero(use)
    if len(chosen) > max_frames:
        use[chosen[max_frames] :] = False
    last = int(np.flatnonzero(use)[-1]) + 1 if use.any() else 0
    frames, responses = _first_frames(movie, last), np.asarray(responses)[:, :last]
    coarse, fine = _spread_lags(reach, max_lags), _spread_lags(reach, fine_lags)
    sta = response_weighted_average(frames, responses, use[:last], coarse)
    found = receptive_field_centres(sta, min_significance, frames_used=int(use.sum()))
    missing = np.flatnonzero(~found.found)
    if len(missing) == 0 or len(fine) <= len(coarse):
        return found
    sta = response_weighted_average(frames, responses[missing], use[:last], fine)
    second = receptive_field_centres(sta, min_significance, frames_used=found.frames_used)
    centres, significance = found.centres.copy(), found.significance.copy()
    centres[missing], significance[missing] = second.centres, second.significance
    return ReceptiveFieldCentres(centres=centres, significance=significance, frames_used=found.frames_used)


def _spread_lags(reach: int, count: int) -> list[int]:
    """Up to `count` lags spread evenly over `0 .. reach - 1` (all of them when `count >= reach`)."""
    count = min(max(int(count), 1), max(int(reach), 1))
    return np.unique(np.linspace(0, max(int(reach) - 1, 0), count).round().astype(int)).tolist()


def _first_frames(movie: Movie, count: int) -> Movie:
    """The first `count` frames of `movie`, as a view (nothing is read)."""
    if count >= len(movie):
        return movie
    index = np.arange(count) if movie.index is None else movie.index[:count]
    return Movie(movie.frames, index=index, mirror=movie.mirror, offset=movie.offset, scale=movie.scale)
