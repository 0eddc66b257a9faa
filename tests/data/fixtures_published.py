"""Writers of files with exactly the published structure of Höfling 2024 and Maheswaranathan 2023.

Tiny by default (a few ROIs, 4×4 pixels) for tests; every size is a parameter so a benchmark can
write full-size files of the real shapes (``write_hoefling_fixture(dir, n_sessions=67,
rois_per_session=117, height=72, width=64)``; ``write_maheswaranathan_fixture(dir, n_train=359802,
n_test=5996, n_cells=(9, 26, 15), sessions=MAHESWARANATHAN_SESSIONS[:3])``). The Höfling time axis
is never shrunk: the reader relies on 123 triggers and 16,200 training frames, as the real data has.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

HOEFLING_SESSIONS = (
    ("session_1_ventral1_20200226", "left", 0),
    ("session_2_ventral2_20200303", "right", 1),
)
HOEFLING_TRIGGERS = 123
HOEFLING_SAMPLES = 4900
HOEFLING_SAMPLE_DT = 0.128
MAHESWARANATHAN_SESSIONS = ("15-10-07", "15-11-21a", "15-11-21b")
RESPONSE_TYPES = ("binned", "firing_rate_5ms", "firing_rate_10ms", "firing_rate_20ms")

# The published Höfling 2024 ROI selection (configs/quality_checks/hoefling_2024.yaml, as keywords).
PUBLISHED_HOEFLING_QUALITY = {
    "filter_cell_types": True,
    "cell_types_list": list(range(1, 33)),
    "d_qi": 0.6,
    "chirp_qi": 0.35,
    "qi_logic": "or",
    "classifier_confidence": 0.25,
    "filter_counts": False,
    "count_threshold": 10,
    "verbose": True,
}

# Per-ROI quality fields of the tiny fixture (5 ROIs): ROI 1 (index 1) passes the QI rule only by
# chirp_qi, ROI 2 fails the classifier confidence, ROI 3 fails both QIs, ROI 4 is an amacrine type.
TINY_CELL_TYPES = (1, 5, 12, 20, 40)
TINY_D_QI = (0.8, 0.3, 0.7, 0.2, 0.9)
TINY_CHIRP_QI = (0.5, 0.6, 0.4, 0.1, 0.5)
TINY_MAX_CONFIDENCE = (0.9, 0.6, 0.2, 0.7, 0.8)


def _hoefling_session_names(n_sessions: int) -> list[tuple[str, str, int]]:
    if n_sessions <= len(HOEFLING_SESSIONS):
        return list(HOEFLING_SESSIONS[:n_sessions])
    names = list(HOEFLING_SESSIONS)
    for k in range(len(names), n_sessions):
        names.append(
            (f"session_{k + 1}_ventral{k % 4 + 1}_2020{k % 12 + 1:02d}{k % 27 + 1:02d}", "right", k % 20)
        )
    return names


def write_hoefling_fixture(
    directory: str | Path,
    *,
    n_sessions: int = 2,
    rois_per_session: int = 5,
    height: int = 4,
    width: int = 4,
    n_sequences: int | None = None,
    all_trace_types: bool = True,
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``responses.h5`` and ``movies.pkl`` like the published files; return their paths.

    Quality fields follow the TINY_* tuples (cycled when there are more ROIs), so with the published
    quality settings 2 of every 5 ROIs survive in each session. ``all_trace_types=False`` writes only
    the spike traces (smaller full-size files).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sessions = _hoefling_session_names(n_sessions)
    n_sequences = n_sequences or max(2, max(column for _, _, column in sessions) + 1)
    responses = directory / "rgc_natstim_2024-08-14.h5"
    n = rois_per_session
    with h5py.File(responses, "w") as handle:
        for name, eye, column in sessions:
            group = handle.create_group(name)
            group.attrs["date"] = f"{name[-8:-4]}-{name[-4:-2]}-{name[-2:]}"
            group.attrs["exp_num"] = int(name.split("ventral")[1].split("_")[0])
            group.attrs["experimenter"] = "fixture"
            group.attrs["eye"] = eye
            group.attrs["field"] = "GCL0"
            group.attrs["scan_sequence_idx"] = column
            _write_hoefling_group(group, n, rng, all_trace_types)
    movies = directory / "rgc_natstim_joint_normalized.pkl"
    train = np.empty((2, 108 * 150, height, width), dtype=np.float32)
    for start in range(0, train.shape[1], 1500):  # in blocks: no float64 temporary at full size
        train[:, start : start + 1500] = rng.standard_normal(
            (2, min(1500, train.shape[1] - start), height, width), dtype=np.float32
        )
    content = {
        "train": train,
        "test": rng.standard_normal((2, 750, height, width), dtype=np.float32),
        "random_sequences": np.stack([rng.permutation(108) for _ in range(n_sequences)], axis=1).astype(
            np.uint8
        ),
    }
    with movies.open("wb") as sink:
        pickle.dump(content, sink, protocol=4)
    return {"responses": responses, "movies": movies}


def _cycle(values: Sequence[float], n: int) -> np.ndarray:
    return np.resize(np.asarray(values), n)


def _write_hoefling_group(group: h5py.Group, n: int, rng: np.random.Generator, all_trace_types: bool) -> None:
    samples = np.arange(HOEFLING_SAMPLES)
    times = (HOEFLING_SAMPLE_DT * samples[None, :] + rng.uniform(0, 0.05, (n, 1))).astype(np.float32)
    spikes = rng.gamma(0.5, 1.0, (n, HOEFLING_SAMPLES)).astype(np.float32)
    group["natural_spikes"] = spikes
    if all_trace_types:
        raw = (spikes + rng.standard_normal((n, HOEFLING_SAMPLES)).astype(np.float32) + 10).astype(np.float32)
        group["natural_raw_traces"] = raw
        group["natural_smoothed_traces"] = np.full_like(raw, 10.0)
        group["natural_preprocessed_traces"] = (raw - 10).astype(np.float32)
    group["natural_traces_times"] = times
    group["natural_trigger_times"] = np.tile(1 + 5 * np.arange(HOEFLING_TRIGGERS, dtype=np.float32), (n, 1))
    group["chirp_spikes"] = rng.gamma(0.5, 1.0, (n, 249)).astype(np.float32)
    group["chirp_trigger_times"] = np.tile(np.arange(10, dtype=np.float32) * 33, (n, 1))
    group["mb_spikes"] = rng.gamma(0.5, 1.0, (n, 257)).astype(np.float32)
    group["mb_trigger_times"] = np.tile(np.arange(24, dtype=np.float32) * 4, (n, 1))
    group["group_assignment"] = _cycle(TINY_CELL_TYPES, n).astype(np.int32)
    confidences = rng.uniform(0, 0.01, (n, 46)).astype(np.float32)
    types = _cycle(TINY_CELL_TYPES, n)
    confidences[np.arange(n), types - 1] = _cycle(TINY_MAX_CONFIDENCE, n)
    group["group_confidences"] = confidences
    group["d_qi"] = _cycle(TINY_D_QI, n).astype(np.float64)
    group["chirp_qi"] = _cycle(TINY_CHIRP_QI, n).astype(np.float64)
    group["roi_ids"] = np.arange(1, n + 1, dtype=np.int32)
    mask = np.ones((64, 64), dtype=np.int32)
    for k in range(n):
        row, col = divmod(k, 16)
        mask[4 * row : 4 * row + 3, 4 * col : 4 * col + 3] = -(k + 1)
    group["roi_mask"] = mask
    group["roi_coords"] = np.zeros((n, 2), dtype=np.float32)


def write_maheswaranathan_fixture(
    directory: str | Path,
    *,
    sessions: Sequence[str] = MAHESWARANATHAN_SESSIONS[:2],
    stim_type: str = "naturalscene",
    n_cells: int | Sequence[int] = 5,
    n_train: int = 372,
    n_test: int = 120,
    n_repeats: int = 5,
    size: int = 50,
    repeats_layout: str = "cells",
    seed: int = 0,
) -> Path:
    """Write ``neural_code_data/ganglion_cell_data/<session>/<stim_type>.h5``; return ``neural_code_data``.

    Like the published files, test responses have one bin more than the test movie (n_test + 1),
    and ``test/response/*`` is the mean of the repeats. ``repeats_layout`` "cells" writes
    ``test/repeats/cellNN`` (repeats, time) per cell; "stacked" writes one (repeats, cells, time)
    dataset per response type.
    """
    root = Path(directory) / "neural_code_data"
    rng = np.random.default_rng(seed)
    counts = [n_cells] * len(sessions) if isinstance(n_cells, int) else list(n_cells)
    for session, cells in zip(sessions, counts, strict=True):
        folder = root / "ganglion_cell_data" / session
        folder.mkdir(parents=True, exist_ok=True)
        with h5py.File(folder / f"{stim_type}.h5", "w") as handle:
            _write_maheswaranathan_split(handle, "train", n_train, cells, size, rng, repeats=None)
            _write_maheswaranathan_split(
                handle, "test", n_test, cells, size, rng, repeats=(n_repeats, repeats_layout)
            )
            for cell in range(cells):
                handle[f"spikes/cell{cell + 1:02d}"] = np.sort(rng.uniform(0, n_train * 0.01, 50))
    return root


def _write_maheswaranathan_split(
    handle: h5py.File,
    split: str,
    frames: int,
    cells: int,
    size: int,
    rng: np.random.Generator,
    repeats: tuple[int, str] | None,
) -> None:
    stimulus = handle.create_dataset(f"{split}/stimulus", (frames, size, size), dtype=np.uint8)
    for start in range(0, frames, 4096):  # in blocks, so full-size files never sit in memory
        stop = min(frames, start + 4096)
        stimulus[start:stop] = rng.integers(0, 256, (stop - start, size, size), dtype=np.uint8)
    handle[f"{split}/time"] = np.arange(frames) * 0.01
    bins = frames if repeats is None else frames + 1
    if repeats is None:
        for key in RESPONSE_TYPES:
            handle[f"{split}/response/{key}"] = rng.gamma(1.0, 2.0, (cells, bins))
        return
    count, layout = repeats
    trials = {key: rng.gamma(1.0, 2.0, (count, cells, bins)) for key in RESPONSE_TYPES}
    for key in RESPONSE_TYPES:
        handle[f"{split}/response/{key}"] = trials[key].mean(axis=0)
    if layout == "stacked":
        for key in RESPONSE_TYPES:
            handle[f"{split}/repeats/{key}"] = trials[key]
    else:
        for cell in range(cells):
            handle[f"{split}/repeats/cell{cell + 1:02d}"] = trials["firing_rate_10ms"][:, cell]


def write_hoefling_full_size(
    directory: str | Path, *, scale: float = 1.0, high_res: bool = True
) -> dict[str, Path]:
    """Höfling files of the published size (67 fields, 7,863 ROIs, 72x64 or 18x16 movies).

    ``scale`` < 1 shrinks the number of fields (not the time axis or the frame size).
    """
    height, width = (72, 64) if high_res else (18, 16)
    return write_hoefling_fixture(
        directory,
        n_sessions=max(1, round(67 * scale)),
        rois_per_session=117,  # 67 x 117 = 7,839, about the published 7,863
        height=height,
        width=width,
        n_sequences=20,
        all_trace_types=False,
    )


def write_maheswaranathan_full_size(directory: str | Path, *, scale: float = 1.0) -> Path:
    """Maheswaranathan files of the published shapes: 3 sessions, 359,802 training frames of 50x50.

    ``scale`` < 1 shortens the training movie (the test movie keeps its 5,996 frames).
    """
    return write_maheswaranathan_fixture(
        directory,
        sessions=MAHESWARANATHAN_SESSIONS,
        n_cells=(9, 26, 15),
        n_train=max(372, round(359802 * scale)),
        n_test=5996,
        n_repeats=5,
    )


def float32_bytes(dataset: object) -> int:
    """The dataset's size held as float32: each distinct movie array once, plus every response array.

    The yardstick for the memory budget (peak <= 1.5x this): what a reader holding everything as
    float32, without copies, would need.
    """
    movies: dict[int, int] = {}
    responses = 0
    for session in dataset.sessions.values():  # type: ignore[attr-defined]
        for movie in [session.train_movie, *(test.movie for test in session.tests.values())]:
            movies[id(movie.frames)] = int(np.prod(movie.frames.shape))
        responses += session.train_responses.size
        for test in session.tests.values():
            responses += test.responses.size + (0 if test.trials is None else test.trials.size)
    return 4 * (sum(movies.values()) + responses)


GOLDIN_SESSIONS = ("mouse_retina_1", "mouse_retina_2", "axolotl_retina_1")


def write_goldin_fixture(
    directory: str | Path,
    *,
    sessions: Sequence[str] = GOLDIN_SESSIONS,
    n_cells: int = 5,
    n_train: int = 60,
    n_test: int = 6,
    n_repeats: int = 4,
    size: int = 16,
    shared_images: bool = True,
    seed: int = 0,
) -> Path:
    """Write ``marre_lab/goldin_2022/<session>.h5`` like the published files; return that folder.

    uint8 images, spike counts per presentation under ``*/response/binned``, the test target the
    mean of ``test/repeats/cell_<k>``. ``shared_images`` gives every session the same images (as
    sessions of one species saw), so the reader can hold them once.
    """
    root = Path(directory) / "marre_lab" / "goldin_2022"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_train + n_test, size, size), dtype=np.uint8)
    for session in sessions:
        if not shared_images:
            images = rng.integers(0, 256, (n_train + n_test, size, size), dtype=np.uint8)
        with h5py.File(root / f"{session}.h5", "w") as handle:
            handle["train/stimulus"] = images[:n_train]
            handle["test/stimulus"] = images[n_train:]
            handle["train/response/binned"] = rng.poisson(3.0, (n_cells, n_train)).astype(np.float64)
            trials = rng.poisson(3.0, (n_repeats, n_cells, n_test)).astype(np.float64)
            handle["test/response/binned"] = trials.mean(axis=0)
            for cell in range(n_cells):
                handle[f"test/repeats/cell_{cell}"] = trials[:, cell]
    return root


KARAMANLIS_SESSIONS = ("20220301_mouse_retina1", "20220412_marmoset_retina2")


def write_mat_v73_header(path: Path) -> None:
    """Write MATLAB's 128-byte v7.3 header into the 512-byte userblock of the HDF5 file ``path``."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM"
    with path.open("r+b") as handle:
        handle.write(header)


def write_karamanlis_fixture(
    directory: str | Path,
    *,
    sessions: Sequence[str] = KARAMANLIS_SESSIONS,
    n_cells: int = 6,
    n_blocks: int = 4,
    block_frames: int = 150,
    test_frames: int = 75,
    n_repeats: int = 3,
    n_images: int = 5,
    image_height: int = 300,
    image_width: int = 400,
    seed: int = 0,
) -> Path:
    """Write ``gollisch_lab/karamanlis_2024/sessions/<session>/<session>_fixationmovie_data.mat`` as
    MATLAB v7.3 saves them (HDF5 behind a 512-byte header, doubles, axes as h5py reads them);
    return the ``sessions`` folder. Fixations keep the image on the screen (gaze within the image)."""
    root = Path(directory) / "gollisch_lab" / "karamanlis_2024" / "sessions"
    rng = np.random.default_rng(seed)
    for session in sessions:
        folder = root / session
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{session}_fixationmovie_data.mat"
        with h5py.File(path, "w", userblock_size=512) as handle:
            for split, frames in (("running", (n_blocks, block_frames)), ("frozen", (test_frames,))):
                images = rng.uniform(0.0, 1.0, (n_images, image_width, image_height))  # MATLAB (y, x, n)
                fixations = np.stack(
                    [
                        rng.integers(1, n_images + 1, frames),
                        rng.integers(0, image_width, frames),
                        rng.integers(0, image_height, frames),
                    ],
                    axis=-1,
                ).astype(np.float64)
                _mat(handle, f"{split}Images", images)
                _mat(handle, f"{split}fixations", fixations)
            _mat(handle, "runningbin", rng.poisson(1.0, (n_blocks, block_frames, n_cells)).astype(np.float64))
            _mat(handle, "frozenbin", rng.poisson(1.0, (n_repeats, test_frames, n_cells)).astype(np.float64))
        write_mat_v73_header(path)
    return root


def _mat(handle: h5py.File, key: str, values: np.ndarray) -> None:
    handle[key] = values
    handle[key].attrs["MATLAB_class"] = np.bytes_("double")
