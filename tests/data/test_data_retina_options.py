"""The simulated retina's cell options (the retina zoo's knobs): filter span, centre size, surround,
polarity; the defaults keep the built-in retina as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from openretina_data import DataError, read_ground_truth, write_retina_dataset

_SMALL = {
    "num_sessions": 1,
    "neurons_per_session": 8,
    "num_colors": 1,
    "height": 12,
    "width": 12,
    "train_frames": 200,
    "clip_length": 50,
    "test_frames": 60,
    "test_trials": 2,
}


def _truth(path: Path, **options: object) -> dict[str, np.ndarray]:
    return read_ground_truth(write_retina_dataset(path, **{**_SMALL, **options})).sessions["session_0"]


def test_default_options_leave_the_retina_unchanged(tmp_path: Path) -> None:
    plain = _truth(tmp_path / "plain")
    explicit = _truth(
        tmp_path / "explicit",
        filter_ms=None,
        centre_sigma=(1.3, 2.0),
        surround_strength=(0.3, 0.6),
        polarity="mixed",
    )
    for key in ("spatial_rf", "temporal_filter", "rates_natural_test", "polarity", "position"):
        np.testing.assert_array_equal(plain[key], explicit[key])


def test_polarity_on_and_off_keep_the_other_draws(tmp_path: Path) -> None:
    mixed = _truth(tmp_path / "mixed")
    on = _truth(tmp_path / "on", polarity="on")
    off = _truth(tmp_path / "off", polarity="off")
    assert set(mixed["polarity"].tolist()) == {-1.0, 1.0}
    assert np.all(on["polarity"] == 1.0)
    assert np.all(off["polarity"] == -1.0)
    assert all(t.startswith("ON") for t in on["cell_type"])
    np.testing.assert_array_equal(on["position"], mixed["position"])


def test_centre_size_and_surround(tmp_path: Path) -> None:
    tiny = _truth(tmp_path / "tiny", centre_sigma=(0.3, 0.4), surround_strength=(0.0, 0.0))
    wide = _truth(tmp_path / "wide", centre_sigma=(3.0, 3.5))
    # a sub-pixel centre without surround: a few pixels carry the weight, none negative
    peak_share = np.abs(tiny["spatial_rf"]).reshape(8, -1).max(axis=1) / np.abs(tiny["spatial_rf"]).reshape(
        8, -1
    ).sum(axis=1)
    assert np.all(peak_share > 0.4)  # at most four pixels share a centre placed between them
    assert tiny["spatial_rf"].min() >= 0.0
    assert wide["spatial_rf"].min() < 0.0  # the default surround is antagonistic
    wide_share = np.abs(wide["spatial_rf"]).reshape(8, -1).max(axis=1) / np.abs(wide["spatial_rf"]).reshape(
        8, -1
    ).sum(axis=1)
    assert np.all(wide_share < 0.1)


def test_filter_ms_stretches_the_filters_in_time(tmp_path: Path) -> None:
    rate = 100.0
    short = _truth(tmp_path / "short", frame_rate_hz=rate, filter_ms=100.0, filter_frames=10)
    long = _truth(tmp_path / "long", frame_rate_hz=rate, filter_ms=600.0, filter_frames=60)
    short_peak = np.abs(short["temporal_filter"]).argmax(axis=1)
    long_peak = np.abs(long["temporal_filter"]).argmax(axis=1)
    assert np.all(short_peak <= 3)  # peak near 16 ms after the frame
    assert np.all((long_peak >= 5) & (long_peak <= 13))  # about six times later


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"polarity": "both"}, "polarity is 'both'"),
        ({"centre_sigma": (2.0, 1.0)}, "cannot make receptive fields"),
        ({"filter_ms": 0.0}, "cannot make receptive fields"),
    ],
)
def test_bad_options_say_what_to_use(tmp_path: Path, options: dict[str, object], match: str) -> None:
    with pytest.raises(DataError, match=match):
        write_retina_dataset(tmp_path / "bad", **{**_SMALL, **options})
    assert not (tmp_path / "bad").exists()
