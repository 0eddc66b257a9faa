"""Frame counts that follow time: a config written for one frame rate, used on data at another.

A retina integrates over a span of time, not a number of frames: a 15-frame kernel is 500 ms at
30 Hz but 150 ms at 100 Hz. With `frame_counts_at_hz` set, the frame counts of the config
(`model.temporal_kernel_sizes`, `dataloader.train_chunk_size`, `dataloader.clip_length`) are read
as frames at that rate, and on data whose frame rate is known they are rescaled to cover the same
milliseconds; `dataloader.batch_size` shrinks (grows) in proportion, so a batch holds the same
seconds of movie and an epoch the same number of optimiser steps. The rescaled config is what the
run saves, with `frame_counts_at_hz` set to the data's rate, so a resumed run does not rescale twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf, open_dict

from openretina_cli.errors import ConfigError

KEY = "frame_counts_at_hz"


@dataclass(frozen=True)
class Rescaled:
    cfg: DictConfig
    note: str | None  # what changed, for the run's output; None when nothing did


def frames_for_rate(frames: int, from_hz: float, to_hz: float) -> int:
    """`frames` at `from_hz` as a frame count at `to_hz` covering the same time (at least 1)."""
    return max(1, round(frames * to_hz / from_hz))


def rescale_to_frame_rate(cfg: DictConfig, frame_rate_hz: float | None) -> Rescaled:
    """`cfg` with its frame counts rescaled from `cfg.frame_counts_at_hz` to `frame_rate_hz`."""
    reference = cfg.get(KEY)
    if reference is None or frame_rate_hz is None:
        return Rescaled(cfg, None)
    reference = float(reference)
    if reference <= 0:
        raise ConfigError(
            f"{KEY}={reference:g} is not a frame rate. Set {KEY} to the rate (Hz) the config's frame counts "
            f"are written for, or {KEY}=null to use them as frames at any rate."
        )
    rate = float(frame_rate_hz)
    if abs(rate - reference) < 1e-6:
        return Rescaled(cfg, None)
    cfg = cfg.copy()
    kernels = cfg.model.get("temporal_kernel_sizes")
    changes = []
    with open_dict(cfg):
        if kernels is not None:
            values = OmegaConf.to_container(kernels) if OmegaConf.is_list(kernels) else kernels
            scaled = (
                [frames_for_rate(int(k), reference, rate) for k in values]
                if isinstance(values, list)
                else frames_for_rate(int(values), reference, rate)
            )
            changes.append(f"model.temporal_kernel_sizes {values} -> {scaled}")
            cfg.model.temporal_kernel_sizes = scaled
        for key in ("train_chunk_size", "clip_length"):
            before = int(cfg.dataloader[key])
            after = frames_for_rate(before, reference, rate)
            changes.append(f"dataloader.{key} {before} -> {after}")
            cfg.dataloader[key] = after
        # Longer chunks, fewer per batch: a batch holds the same seconds of movie, so an epoch
        # keeps its number of optimiser steps (at 75 Hz, 16 chunks of 200 frames left 2 per epoch).
        batch = int(cfg.dataloader.batch_size)
        fewer = max(1, round(batch * reference / rate))
        if fewer != batch:
            changes.append(f"dataloader.batch_size {batch} -> {fewer}")
            cfg.dataloader.batch_size = fewer
        cfg[KEY] = rate
    note = (
        f"The data's frame rate is {rate:g} Hz and the config's frame counts are for {reference:g} Hz "
        f"({KEY}), so they were rescaled to the same time span: {'; '.join(changes)}. "
        f"Set {KEY}=null to use them as frames."
    )
    return Rescaled(cfg, note)
