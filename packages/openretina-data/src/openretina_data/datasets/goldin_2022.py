"""Goldin et al. 2022: mouse and axolotl ganglion cells (MEA) to flashed natural images.

One HDF5 file per session in the mirror folder ``marre_lab/goldin_2022/``, its species in its name::

    train/stimulus (N_img, H, W), test/stimulus (N_test, H, W)       about 108 x 108
    train/response/<type> (neurons, N_img), test/response/<type> (neurons, N_test)
        spike counts over each 300 ms presentation ("binned"), divided by fr_normalization (0.3: Hz)
    test/repeats/cell_<k> (repeats, N_test)                           optional, one per neuron

Each image is one frame (a one-frame "clip"), so a model needs a time-independent first layer
(temporal kernel 1) and the splits cut by image (``clip_length: 1``). Identical training images
are merged into one presentation (their responses averaged), and test images are removed from
training, so no split can put one image on both sides. Frames keep their stored dtype (uint8 stays
uint8); the z-scoring is applied per batch through ``Movie.offset``/``Movie.scale``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from openretina_data.datasets.fetching import (
    ProgressCallback,
    fetch_folder,
    is_set,
    is_url,
    relative_cache_path,
)
from openretina_data.datasets.normalisation import frame_moments, normalised, pooled_moments
from openretina_data.datasets.session_choice import choose_sessions
from openretina_data.errors import DataError
from openretina_data.records import DataInfo, Dataset, Movie, SessionData, TestSet

FOLDER_URL = "https://huggingface.co/datasets/open-retina/open-retina/tree/main/marre_lab/goldin_2022"
SPECIES = ("mouse", "axolotl")
TEST_NAME = "naturalscene"
_REPEAT_NAME = re.compile(r"^cell_?(\d+)$")


def load_goldin_2022(
    *,
    url: str = FOLDER_URL,
    data_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    species: str = "mouse",
    response_type: str = "binned",
    fr_normalization: float = 0.3,
    normalize_stimuli: bool = True,
    sessions: Sequence[str] | None = None,
    pixel_size_um: float = 28.0,
    progress: ProgressCallback | None = None,
) -> Dataset:
    """Goldin 2022 as a :class:`Dataset`, downloading the species' files from the mirror if needed.

    ``data_dir`` (a local folder holding the ``.h5`` files, flat or as ``marre_lab/goldin_2022/``)
    replaces the download; otherwise the cache is used.
    """
    _check_species(species, url)
    if is_set(data_dir) and not is_url(data_dir):
        root = _local_root(Path(data_dir).expanduser(), url)
    else:
        folder_url = f"{str(data_dir).rstrip('/')}/{relative_cache_path(url)}" if is_set(data_dir) else url
        root = fetch_folder(
            folder_url,
            cache_dir=cache_dir,
            wanted=lambda name: name.endswith(".h5") and "/" not in name and species in name,
            progress=progress,
        )
    return read_goldin_2022(
        root,
        species=species,
        response_type=response_type,
        fr_normalization=fr_normalization,
        normalize_stimuli=normalize_stimuli,
        sessions=sessions,
        pixel_size_um=pixel_size_um,
    )


def _check_species(species: str, where: object) -> None:
    if species not in SPECIES:
        raise DataError(str(where), "species", f"unknown species {species!r}", f"use one of {SPECIES}")


def _local_root(data_dir: Path, url: str) -> Path:
    """The folder of ``data_dir`` that holds the session files (mirror layout or flat)."""
    for candidate in (data_dir / relative_cache_path(url), data_dir):
        if candidate.is_dir() and any(candidate.glob("*.h5")):
            return candidate
    raise DataError(
        data_dir,
        "paths.data_dir",
        f"no .h5 session file here nor under {relative_cache_path(url)}/",
        "point it at the folder holding the Goldin 2022 .h5 files, or set it to null to download them",
    )


def read_goldin_2022(
    root: str | os.PathLike[str],
    *,
    species: str = "mouse",
    response_type: str = "binned",
    fr_normalization: float = 0.3,
    normalize_stimuli: bool = True,
    sessions: Sequence[str] | None = None,
    pixel_size_um: float = 28.0,
) -> Dataset:
    """Read a folder of Goldin 2022 session files into a :class:`Dataset`."""
    root = Path(root)
    _check_species(species, root)
    if not fr_normalization or not np.isfinite(fr_normalization):
        raise DataError(
            root, "fr_normalization", f"{fr_normalization!r} cannot divide responses", "use e.g. 0.3"
        )
    files = _session_files(root, species, sessions)
    notes: list[str] = []
    shared: dict[str, np.ndarray] = {}  # content digest -> frames, so identical stimuli are held once
    records: dict[str, SessionData] = {}
    moments: dict[str, tuple[float, float]] = {}
    for name, path in files.items():
        records[name], moments[name] = _read_session(
            path, name, species, response_type, float(fr_normalization), shared, notes
        )
    normalisation = None
    if normalize_stimuli:
        mean, std = pooled_moments(moments, root, "train/stimulus")
        normalisation = {"mean": [mean], "std": [std]}
        records = {name: normalised(session, mean, std) for name, session in records.items()}
    first = next(iter(records.values()))
    info = DataInfo.describe(
        records,
        first.train_movie.frame_shape,
        train_stimuli=(TEST_NAME,),
        test_stimuli=(TEST_NAME,),
        frame_rate_hz=None,  # flashed images: one frame per 300 ms presentation, no time axis
        pixel_size_um=float(pixel_size_um),
        stimulus_normalisation=normalisation,
        response_normalisation={"divided_by": float(fr_normalization)},
    )
    return Dataset(sessions=records, data_info=info, notes=notes)


def _session_files(root: Path, species: str, wanted: Sequence[str] | None) -> dict[str, Path]:
    files = {path.stem: path for path in sorted(root.glob("*.h5")) if species in path.name}
    files = choose_sessions(files, wanted, root, f"{species} session file")
    if not files:
        raise DataError(
            root,
            "species",
            f"no .h5 file with {species!r} in its name",
            f"check the folder, or choose species among {SPECIES}",
        )
    return files


def _dataset(handle: h5py.File, path: Path, key: str, ndim: int, shape_words: str) -> h5py.Dataset:
    if key not in handle or not isinstance(handle[key], h5py.Dataset):
        raise DataError(path, key, "missing", "use the published session files")
    if handle[key].ndim != ndim:
        raise DataError(
            path, key, f"shape {handle[key].shape}, expected {shape_words}", "use the published session files"
        )
    return handle[key]


def _frames(dataset: h5py.Dataset) -> np.ndarray:
    """Images as stored when uint8, else float32 (never a float64 copy of the whole stimulus)."""
    if dataset.dtype == np.uint8 or dataset.dtype == np.float32:
        return dataset[()]
    out = np.empty(dataset.shape, dtype=np.float32)
    dataset.read_direct(out) if dataset.dtype.kind == "f" else np.copyto(out, dataset[()], casting="unsafe")
    return out


def _responses(handle: h5py.File, path: Path, split: str, response_type: str, images: int) -> np.ndarray:
    key = f"{split}/response/{response_type}"
    if key not in handle:
        available = sorted(handle[f"{split}/response"]) if f"{split}/response" in handle else []
        raise DataError(path, key, "missing", f"choose data_io.response_type among {available or ['binned']}")
    values = _dataset(handle, path, key, 2, "(neurons, images)")
    if values.shape[1] != images:
        raise DataError(
            path,
            key,
            f"{values.shape[1]} responses per neuron for {images} images",
            "use the published session files",
        )
    return values.astype(np.float32)[()]


def _read_repeats(
    handle: h5py.File, path: Path, n_neurons: int, n_images: int
) -> tuple[np.ndarray | None, np.ndarray]:
    """Trials (R, N, N_test) float32 from ``test/repeats/cell_<k>``, and the cells' numbers."""
    default_ids = np.arange(n_neurons, dtype=np.int64)
    if "test/repeats" not in handle:
        return None, default_ids
    group = handle["test/repeats"]
    cells = sorted((int(m.group(1)), key) for key in group if (m := _REPEAT_NAME.match(key)))
    if len(cells) != n_neurons:
        raise DataError(
            path,
            "test/repeats",
            f"{len(cells)} cell_<k> datasets for {n_neurons} neurons in test/response",
            "use the published session files (one cell_<k> per neuron), "
            "or delete test/repeats to train without trials",
        )
    first_key = cells[0][1]
    expected = group[first_key].shape
    if len(expected) != 2 or expected[1] != n_images:
        raise DataError(
            path,
            f"test/repeats/{first_key}",
            f"shape {expected}, expected (repeats, {n_images})",
            "use the published session files",
        )
    trials = np.empty((expected[0], n_neurons, n_images), dtype=np.float32)
    for row, (_, key) in enumerate(cells):
        cell = group[key]
        if cell.shape != expected:
            raise DataError(
                path,
                f"test/repeats/{key}",
                f"shape {cell.shape}, while test/repeats/{first_key} is {expected}: "
                "repeats of unequal length",
                "use the published session files; every cell needs the same repeats of the same test images",
            )
        trials[:, row] = cell.astype(np.float32)[()]
    return trials, np.array([number for number, _ in cells], dtype=np.int64)


def _read_session(
    path: Path,
    name: str,
    species: str,
    response_type: str,
    fr_normalization: float,
    shared: dict[str, np.ndarray],
    notes: list[str],
) -> tuple[SessionData, tuple[float, float]]:
    with h5py.File(path, "r") as handle:
        train_set = _dataset(handle, path, "train/stimulus", 3, "(images, height, width)")
        test_set = _dataset(handle, path, "test/stimulus", 3, "(images, height, width)")
        if train_set.shape[1:] != test_set.shape[1:]:
            raise DataError(
                path,
                "test/stimulus",
                f"images of {test_set.shape[1:]}, training images are {train_set.shape[1:]}",
                "use the published session files",
            )
        train_frames, test_frames = _frames(train_set), _frames(test_set)
        train = _responses(handle, path, "train", response_type, len(train_frames))
        test = _responses(handle, path, "test", response_type, len(test_frames))
        if train.shape[0] != test.shape[0]:
            raise DataError(
                path,
                f"test/response/{response_type}",
                f"{test.shape[0]} neurons, training has {train.shape[0]}",
                "use the published session files",
            )
        trials, ids = _read_repeats(handle, path, train.shape[0], len(test_frames))
    if trials is not None:
        mean = trials.mean(axis=0)
        if not np.allclose(mean, test, rtol=1e-4, atol=1e-4, equal_nan=True):
            raise DataError(
                path,
                f"test/response/{response_type}",
                "is not the mean of test/repeats over repeats",
                "use the published session files (the test target must be the repeat mean)",
            )
        test = mean
    train_frames, train = _merge_repeated_images(train_frames, train, test_frames, name, notes)
    for array in (train, test, trials):
        if array is not None:
            array /= np.float32(fr_normalization)
    moments = frame_moments(train_frames)
    session = SessionData(
        name=name,
        train_movie=Movie(frames=_shared(train_frames, shared)),
        train_responses=train,
        tests={
            TEST_NAME: TestSet(
                movie=Movie(frames=_shared(test_frames, shared)), responses=test, trials=trials
            )
        },
        neuron_metadata={"neuron_ids": ids, "species": np.full(len(ids), species)},
    )
    return session, moments


def _merge_repeated_images(
    frames: np.ndarray, responses: np.ndarray, test_frames: np.ndarray, name: str, notes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """One presentation per distinct training image (responses averaged), none shown in the test
    set: so splitting by image never puts one image on both sides of a split."""
    digests = _image_digests(frames)
    unique, first, inverse, counts = np.unique(
        digests, return_index=True, return_inverse=True, return_counts=True
    )
    in_test = np.isin(unique, _image_digests(test_frames))
    if len(unique) == len(frames) and not in_test.any():
        return frames, responses
    order = np.argsort(first)  # distinct images in order of first presentation
    keep = order[~in_test[order]]
    sums = np.zeros((len(unique), responses.shape[0]), dtype=np.float64)
    np.add.at(sums, inverse.reshape(-1), responses.T)
    merged = np.ascontiguousarray((sums / counts[:, None])[keep].T, dtype=np.float32)
    if len(unique) < len(frames):
        notes.append(
            f"{name}: {len(frames) - len(unique)} repeated training presentations merged into their first "
            f"(responses averaged), {len(unique)} distinct images"
        )
    if in_test.any():
        notes.append(
            f"{name}: {int(in_test.sum())} training images also shown as test images "
            "were removed from training"
        )
    return np.ascontiguousarray(frames[first[keep]]), merged


def _image_digests(frames: np.ndarray) -> np.ndarray:
    """A 16-byte digest per image (equal images, equal digests) without copying the images."""
    return np.array(
        [hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest() for image in frames],
        dtype="S16",
    )


def _shared(frames: np.ndarray, shared: dict[str, np.ndarray]) -> np.ndarray:
    """``frames`` as (1, T, H, W), or the identical array another session already holds (held once)."""
    digest = hashlib.blake2b(np.ascontiguousarray(frames).data, digest_size=16).hexdigest()
    key = f"{frames.dtype.str}{frames.shape}{digest}"
    return shared.setdefault(key, frames[None])
