"""The retina zoo: simulated retinas that span what real recordings look like (issue 14).

Each member is our linear-nonlinear-Poisson retina (`openretina create-data --kind retina`) with
other options: frame rate (30/75/100 Hz) and temporal filter span (100-600 ms), centre size (under a
pixel to several pixels), with or without surround, 1/2/3 colours, ON/OFF/mixed populations, small
and large frames (sparse small receptive fields on 50x50 and 64x64), high and low signal-to-noise
(spikes per frame; the `noisy_*` members sit at the 0.5-0.8 ceilings of real recordings, issue 24),
a few neurons and a few hundred. Every member has ground truth, so a model's test correlation is
reported as a fraction of the ceiling (the true rate's correlation with the observed trial mean).

    uv run python tools/bench/zoo.py                     # the members and their options
    uv run python tools/bench/run.py --cases zoo --ours-venv .venv --pairs 1 --zoo-budget-s 120
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Member:
    """One simulated retina: its name, what it stands for, and write_retina_dataset's options."""

    name: str
    stands_for: str
    options: dict[str, Any] = field(default_factory=dict)
    config: str = "hdf5_core_readout"  # the default config a user would train it with

    @property
    def frame_rate_hz(self) -> float:
        return float(self.options.get("frame_rate_hz", 30.0))

    @property
    def filter_ms(self) -> float:
        return float(self.options.get("filter_ms") or 500.0)

    def generator_options(self) -> dict[str, Any]:
        """The options with filter_frames set to cover the filter span at the frame rate."""
        frames = math.ceil(self.filter_ms * self.frame_rate_hz / 1000.0)
        return {"filter_frames": frames, **self.options}

    def cli_options(self) -> list[str]:
        """`--option NAME=VALUE` arguments of `openretina create-data --kind retina`."""
        out = []
        for key, value in self.generator_options().items():
            if isinstance(value, (tuple, list)):
                text = f"[{', '.join(str(v) for v in value)}]"
            else:  # quoted strings: YAML would read a bare `on` as true
                text = f"'{value}'" if isinstance(value, str) else str(value)
            out += ["--option", f"{key}={text}"]
        return out


MEMBERS: tuple[Member, ...] = (
    Member(
        "builtin",
        "the built-in simulated retina (2 colours, 18x16 px, 30 Hz, 500 ms filters, 2x32 cells)",
        {},
        config="simulated_retina_core_readout",
    ),
    Member(
        "issue_2c_600ms",
        "issue 14's retina: 2 colours, 18x16 px, 30 Hz, filters ~20 frames (600 ms), 2 sessions x 24",
        {"neurons_per_session": 24, "filter_ms": 600.0, "seed": 1},
    ),
    Member(
        "fast_75hz_subpixel",
        "75 Hz, 100 ms filters, 1 colour, 20x20 px, centres under a pixel, no surround, ON cells",
        {
            "frame_rate_hz": 75.0,
            "filter_ms": 100.0,
            "num_colors": 1,
            "height": 20,
            "width": 20,
            "centre_sigma": (0.3, 0.5),
            "surround_strength": (0.0, 0.0),
            "polarity": "on",
            "seed": 2,
        },
    ),
    Member(
        "slow_100hz_600ms",
        "100 Hz, 600 ms filters (60 frames), 1 colour, 16x16 px, OFF cells",
        {
            "frame_rate_hz": 100.0,
            "filter_ms": 600.0,
            "num_colors": 1,
            "height": 16,
            "width": 16,
            "polarity": "off",
            "train_frames": 12000,
            "test_frames": 600,
            "seed": 3,
        },
    ),
    Member(
        "salamander_50x50",
        "Maheswaranathan-sized: 1 colour, 50x50 px, 100 Hz, 400 ms filters, 2 sessions x 5 cells",
        {
            "frame_rate_hz": 100.0,
            "filter_ms": 400.0,
            "num_colors": 1,
            "height": 50,
            "width": 50,
            "neurons_per_session": 5,
            "centre_sigma": (1.5, 2.5),
            "train_frames": 18000,
            "test_frames": 500,
            "seed": 4,
        },
    ),
    Member(
        "sparse_64x64",
        "large frame, sparse small fields: 1 colour, 64x64 px, 30 Hz, 300 ms filters, 12 cells of ~1 px",
        {
            "filter_ms": 300.0,
            "num_colors": 1,
            "height": 64,
            "width": 64,
            "num_sessions": 1,
            "neurons_per_session": 12,
            "centre_sigma": (0.6, 1.0),
            "train_frames": 6000,
            "seed": 5,
        },
    ),
    Member(
        "three_colour_low_snr",
        "3 colours, 16x16 px, 30 Hz, 400 ms filters, low SNR (0.3 spikes per frame), 2x32 cells",
        {"num_colors": 3, "height": 16, "width": 16, "filter_ms": 400.0, "mean_rate": 0.3, "seed": 6},
    ),
    Member(
        "hundreds_high_snr",
        "a few hundred cells: 1 session x 300, 2 colours, 20x20 px, 75 Hz, 300 ms filters, high SNR",
        {
            "frame_rate_hz": 75.0,
            "filter_ms": 300.0,
            "height": 20,
            "width": 20,
            "num_sessions": 1,
            "neurons_per_session": 300,
            "mean_rate": 8.0,
            "seed": 7,
        },
    ),
    Member(
        "wide_centres",
        "wide centres (3-4 px) with strong surrounds, 1 colour, 24x24 px, 30 Hz, mixed, few cells (2x8)",
        {
            "num_colors": 1,
            "height": 24,
            "width": 24,
            "neurons_per_session": 8,
            "centre_sigma": (3.0, 4.0),
            "surround_strength": (0.6, 0.8),
            "seed": 8,
        },
    ),
    # Issue 24: real recordings sit at ceilings of 0.5-0.8, not near 1 (the ceilings below were
    # measured on the generated data: the true rate's correlation with the observed trial mean).
    Member(
        "noisy_1px_0p15",
        "realistic SNR: 0.15 spikes per frame, 2 colours, 18x16 px, centres of about 1 px, "
        "9,000 training frames (ceiling 0.75)",
        {"mean_rate": 0.15, "centre_sigma": (0.6, 1.0), "seed": 11},
    ),
    Member(
        "noisy_0p05_6k",
        "realistic SNR: 0.05 spikes per frame, 1 colour, 20x20 px, 6,000 training frames (ceiling 0.52)",
        {"mean_rate": 0.05, "num_colors": 1, "height": 20, "width": 20, "train_frames": 6000, "seed": 12},
    ),
    Member(
        "noisy_short_3k",
        "realistic SNR: 0.2 spikes per frame, 1 colour, 18x16 px, 3,000 training frames, "
        "4 test trials (ceiling 0.65)",
        {"mean_rate": 0.2, "num_colors": 1, "train_frames": 3000, "test_trials": 4, "seed": 13},
    ),
)


def by_name(names: list[str] | None) -> list[Member]:
    """The members named (all when None), in zoo order; an unknown name is an error naming the choices."""
    if not names:
        return list(MEMBERS)
    known = {m.name for m in MEMBERS}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValueError(
            f"--zoo-members: unknown {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    return [m for m in MEMBERS if m.name in names]


def main() -> int:
    for member in MEMBERS:
        print(f"{member.name:24s} {member.config:32s} {member.stands_for}")
        print(f"{'':24s} {' '.join(member.cli_options())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
