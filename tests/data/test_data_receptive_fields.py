"""Receptive-field centres from spike-triggered averages (the `readout_init: sta` start)."""

from __future__ import annotations

import numpy as np
import pytest
from openretina_data import Movie
from openretina_data.receptive_fields import (
    locate_receptive_fields,
    receptive_field_centres,
    response_weighted_average,
)

FRAMES, HEIGHT, WIDTH = 4000, 20, 24
CENTRES = np.array([[5.0, 6.0], [14.3, 17.6], [10.0, 3.2]])  # (row, col), sub-pixel on purpose
LAG = 3  # the cells respond to what they saw 3 frames ago


def _retina(seed: int = 0, lag: int = LAG) -> tuple[Movie, np.ndarray]:
    """White noise through Gaussian receptive fields (σ 1 px) and a delay, rectified, Poisson."""
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((1, FRAMES, HEIGHT, WIDTH)).astype(np.float32)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    fields = np.stack([np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / 2.0) for r, c in CENTRES])
    drive = np.einsum("nhw,thw->nt", fields, frames[0])
    delayed = np.zeros_like(drive)
    delayed[:, lag:] = drive[:, :-lag]
    responses = rng.poisson(np.maximum(delayed, 0) * 2.0).astype(np.float32)
    return Movie(frames), responses


def test_centres_are_found_to_a_fraction_of_a_pixel() -> None:
    movie, responses = _retina()
    found = locate_receptive_fields(movie, responses, np.ones(FRAMES, bool), reach=8)
    assert found.found.all()
    assert np.abs(found.centres - CENTRES).max() < 0.5
    assert found.frames_used == FRAMES


def test_a_peak_between_the_spread_lags_is_found_by_the_second_look() -> None:
    # 8 lags spread over a 31-frame reach are 0, 4, 9, ...: a 2-frame delay falls between them
    # (issue 24: fields of 0.05-spikes-per-frame cells went unfound); every lag finds it.
    movie, responses = _retina(lag=2)
    use = np.ones(FRAMES, bool)
    coarse_only = locate_receptive_fields(movie, responses, use, reach=31, fine_lags=8)
    assert not coarse_only.found.any()
    found = locate_receptive_fields(movie, responses, use, reach=31)
    assert found.found.all()
    assert np.abs(found.centres - CENTRES).max() < 0.5
    assert (found.significance >= 5).all()


def test_noise_has_no_receptive_field() -> None:
    movie, responses = _retina()
    shuffled = np.random.default_rng(1).permuted(responses, axis=1)
    found = locate_receptive_fields(movie, shuffled, np.ones(FRAMES, bool), reach=31)  # both looks
    assert not found.found.any()
    assert np.isnan(found.centres).all()
    assert (found.significance < 5).all()


def test_only_the_frames_in_use_contribute() -> None:
    movie, responses = _retina()
    use = np.zeros(FRAMES, bool)
    use[: FRAMES // 2] = True
    poisoned = responses.copy()
    poisoned[:, FRAMES // 2 :] = 1e6  # validation/test responses: must never enter
    clean = locate_receptive_fields(movie, responses, use, reach=8)
    dirty = locate_receptive_fields(movie, poisoned, use, reach=8)
    np.testing.assert_array_equal(clean.centres, dirty.centres)
    assert clean.frames_used == FRAMES // 2


def test_blocks_do_not_change_the_average() -> None:
    movie, responses = _retina()
    use = np.ones(FRAMES, bool)
    whole = response_weighted_average(movie, responses, use, [0, 3, 7], block_frames=FRAMES)
    blocked = response_weighted_average(movie, responses, use, [0, 3, 7], block_frames=333)
    np.testing.assert_allclose(whole, blocked, rtol=1e-5, atol=1e-7)
    # the lag-3 map is the strongest: the cells respond to the frame 3 back
    energy = np.square(whole).sum(axis=(2, 3, 4))
    assert (energy.argmax(axis=1) == 1).all()


def test_max_frames_caps_the_work() -> None:
    movie, responses = _retina()
    found = locate_receptive_fields(movie, responses, np.ones(FRAMES, bool), reach=8, max_frames=1500)
    assert found.frames_used == 1500
    assert np.abs(found.centres - CENTRES).max() < 0.7


def test_bad_lags_and_misaligned_inputs_are_refused() -> None:
    movie, responses = _retina()
    with pytest.raises(ValueError, match="lags"):
        response_weighted_average(movie, responses, np.ones(FRAMES, bool), [-1])
    with pytest.raises(ValueError, match="align"):
        response_weighted_average(movie, responses[:, :-1], np.ones(FRAMES - 1, bool), [0])


def test_flat_energy_gives_no_centre() -> None:
    sta = np.zeros((1, 2, 1, 5, 5), np.float32)
    found = receptive_field_centres(sta)
    assert np.isnan(found.centres).all()
