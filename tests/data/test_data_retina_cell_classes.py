"""The simulated retina's characterisation cells (issue 22): off by default, and their truth.

With `cell_classes`, the population mixes direction- and orientation-selective cells and cells
with rectified subunits into the usual linear ones; the ground truth keeps what a
characterisation should recover and every parameter needed to run the true cells again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
from openretina_data import DataError, load_hdf5_dataset, read_ground_truth, write_retina_dataset
from openretina_data.synthetic import true_rates
from openretina_data.synthetic.cell_models import direction_selectivity, moving_bar

_SMALL = {
    "num_sessions": 1,
    "neurons_per_session": 16,
    "num_colors": 2,
    "height": 16,
    "width": 16,
    "train_frames": 600,
    "clip_length": 50,
    "test_frames": 60,
    "test_trials": 2,
}
_CLASSES = ["direction", "orientation", "subunit"]


def _digest(root: Path) -> str:
    """A hash of every array and attribute under `root` (file names included)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        if path.suffix == ".npy":
            digest.update(np.load(path).tobytes())
            continue
        with h5py.File(path) as handle:
            found: list[tuple[str, h5py.HLObject]] = [("/", handle)]
            handle.visititems(lambda key, item, into=found: into.append((key, item)))
            for key, item in found:
                digest.update(key.encode())
                if isinstance(item, h5py.Dataset):
                    value = np.asarray(item[()])
                    digest.update(
                        str(value.tolist()).encode() if value.dtype.kind == "O" else value.tobytes()
                    )
                for name in sorted(item.attrs):
                    digest.update(f"{name}={item.attrs[name]}".encode())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def characterisation_retina(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_retina_dataset(
        tmp_path_factory.mktemp("retina") / "r",
        cell_classes=_CLASSES,
        pixel_size_um=50.0,
        motion=0.5,
        **_SMALL,
    )


def test_the_new_options_are_off_by_default(tmp_path: Path) -> None:
    plain = write_retina_dataset(tmp_path / "plain", **_SMALL)
    explicit = write_retina_dataset(
        tmp_path / "explicit", cell_classes=(), pixel_size_um=None, motion=0.0, **_SMALL
    )
    assert _digest(plain) == _digest(explicit)
    truth = read_ground_truth(plain).sessions["session_0"]
    assert "true_dsi" not in truth
    assert "cell_class" not in truth
    with h5py.File(plain / "session_0.h5") as handle:
        assert "pixel_size_um" not in handle.attrs


def test_every_class_is_there_with_its_truth(characterisation_retina: Path) -> None:
    truth = read_ground_truth(characterisation_retina).sessions["session_0"]
    classes = truth["cell_class"]
    assert sorted(set(classes)) == ["direction", "linear", "orientation", "subunit"]
    assert all(np.sum(classes == name) == 4 for name in set(classes))
    for key in (
        "polarity",
        "rf_x_px",
        "rf_y_px",
        "rf_x_um",
        "rf_y_um",
        "sigma_px",
        "surround_strength",
        "true_dsi",
        "preferred_direction_deg",
        "true_osi",
        "preferred_orientation_deg",
        "subunit",
    ):
        assert truth[key].shape == (16,), key
    np.testing.assert_allclose(truth["rf_x_um"], (truth["rf_x_px"] + 0.5) * 50.0, rtol=1e-6)
    np.testing.assert_array_equal(truth["subunit"], classes == "subunit")
    ds = classes == "direction"
    assert set(truth["cell_type"][ds]) <= {"ON DS", "OFF DS"}
    # the direction-selective cells are the selective ones, and prefer the direction they were built for
    assert truth["true_dsi"][ds].min() > 2 * truth["true_dsi"][~ds].max()
    error = (truth["preferred_direction_deg"][ds] - truth["design_direction_deg"][ds] + 180) % 360 - 180
    assert np.abs(error).max() < 20
    os_cells = classes == "orientation"
    assert np.median(truth["true_osi"][os_cells]) > np.median(truth["true_osi"][classes == "linear"])


def test_the_movies_are_bounded_and_the_cells_share_a_peak_rate(characterisation_retina: Path) -> None:
    """Like a display's black and white, the movies stop near ±2.1 std (an unbounded Gaussian movie
    reaches ±5); and every cell reaches the same high rate, so the sparse cells fire less on average."""
    movie = np.load(characterisation_retina / "stimuli" / "natural_0.npy")
    assert 1.9 < np.abs(movie).max() < 2.3
    truth = read_ground_truth(characterisation_retina).sessions["session_0"]
    train = np.concatenate(
        [np.load(p) for p in sorted((characterisation_retina / "stimuli").glob("natural_[0-9]*.npy"))], axis=1
    )
    rates = true_rates(characterisation_retina, "session_0", train)
    peaks = np.percentile(rates, 99.9, axis=1)
    np.testing.assert_allclose(peaks, np.median(peaks), rtol=0.25)
    classes = truth["cell_class"]
    assert rates[classes == "direction"].mean() < 0.6 * rates[classes == "linear"].mean()


def test_pixel_size_and_frame_rate_reach_the_data_info(characterisation_retina: Path) -> None:
    info = load_hdf5_dataset(characterisation_retina, test_names=["natural_test"]).data_info.to_dict()
    assert info["pixel_size_um"] == 50.0
    assert info["frame_rate_hz"] == 30.0
    assert "cell_class" in info["sessions"]["session_0"]["metadata"]


def test_true_rates_round_trip(characterisation_retina: Path) -> None:
    truth = read_ground_truth(characterisation_retina).sessions["session_0"]
    test = np.load(characterisation_retina / "stimuli" / "natural_test.npy")
    rates = true_rates(characterisation_retina, "session_0", test)
    np.testing.assert_allclose(rates, truth["rates_natural_test"], rtol=1e-4, atol=1e-5)
    # and the stored bar truth is what the true cells do to moving bars
    lead, responses = 30, []
    for direction in np.arange(8) * 45.0:
        movie = moving_bar(2, 16, 16, direction, 3.0, 0.5, 2.0, lead_frames=lead)
        rate = true_rates(characterisation_retina, "session_0", movie)
        responses.append(np.maximum(rate[:, lead:] - rate[:, lead - 1 : lead], 0).mean(axis=1))
    again = direction_selectivity(np.stack(responses, axis=1), np.arange(8) * 45.0)
    np.testing.assert_allclose(again["true_dsi"], truth["true_dsi"], atol=1e-5)


def test_true_rates_refuses_what_it_cannot_run(tmp_path: Path, characterisation_retina: Path) -> None:
    plain = write_retina_dataset(tmp_path / "plain", **_SMALL)
    with pytest.raises(DataError, match="does not keep the parameters"):
        true_rates(plain, "session_0", np.zeros((2, 20, 16, 16), np.float32))
    with pytest.raises(DataError, match="no such session"):
        true_rates(characterisation_retina, "session_9", np.zeros((2, 20, 16, 16), np.float32))
    with pytest.raises(ValueError, match=r"\(C, T, H, W\)"):
        true_rates(characterisation_retina, "session_0", np.zeros((1, 20, 16, 16), np.float32))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"cell_classes": ["direction", "bipolar"]}, "cell_classes has 'bipolar'"),
        ({"pixel_size_um": 0.0}, "pixel_size_um is 0.0"),
        ({"motion": -1.0}, "motion is -1.0"),
    ],
)
def test_bad_options_say_what_to_use(tmp_path: Path, options: dict[str, object], match: str) -> None:
    with pytest.raises(DataError, match=match):
        write_retina_dataset(tmp_path / "bad", **{**_SMALL, **options})
    assert not (tmp_path / "bad").exists()
