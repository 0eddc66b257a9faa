"""The stimuli retina labs characterise cells with, generated for any model's frame and units.

Labs describe their stimuli in physical units (µm on the retina, seconds, Hz); a model sees
frames of a given size, at a given frame rate, in normalised units. A `StimulusSpace` holds what
it takes to convert one into the other, read from the model's `data_info` (or given), and every
generator here returns a `StimulusSet` of movies `(K, C, T, H, W)` in the model's normalised
units, one per condition (a direction, a colour channel, a grating...).

Contrast. Every stimulus is drawn in contrast units: 0 is the mean grey the model was adapted to
(the training movie's mean, normalised 0) and ±1 the brightest and darkest levels it shows, which
are ±`amplitude` normalised units per channel. By default `amplitude` is the largest symmetric
range inside the training movie's stored range (`data_info["stimulus_range"]`), so ON and OFF
steps are equally strong and never leave what the retina was shown; without a stored range it is
`DEFAULT_AMPLITUDE` (and `note` says so). `from_raw_levels` sets it from a display's black and white
in the raw units the training movie had, through the stored normalisation (mean/std).

Geometry. Directions are in degrees, counter-clockwise, with 0° = moving towards increasing
column index (right) and 90° = moving towards row 0 (up, with row 0 drawn at the top). Positions
are in µm from the frame's top-left corner: pixel (row r, column c) has its centre at
x = (c + 0.5) · pixel size, y = (r + 0.5) · pixel size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = [
    "DEFAULT_AMPLITUDE",
    "StimulusError",
    "StimulusSet",
    "StimulusSpace",
    "UnshowableStimulus",
    "chirp",
    "dense_noise",
    "drifting_gratings",
    "flashes",
    "moving_bars",
]

DEFAULT_AMPLITUDE = 1.0  # normalised units per unit contrast when the model stores no stimulus range


class StimulusError(ValueError):
    """A stimulus that cannot be made as asked; the message names the parameter and the fix."""


class UnshowableStimulus(StimulusError):
    """The model's frame cannot show this stimulus at all (e.g. a moving bar on 1×1 frames)."""


@dataclass(frozen=True)
class StimulusSpace:
    """The model's frame (channels, height, width), its units and its contrast scale."""

    channels: int
    height: int
    width: int
    frame_rate_hz: float | None = None
    pixel_size_um: float | None = None
    amplitude: tuple[float, ...] = ()  # normalised units per unit contrast, per channel
    note: str | None = None  # how `amplitude` was chosen, when it was not the model's stored range

    def __post_init__(self) -> None:
        if min(self.channels, self.height, self.width) < 1:
            raise StimulusError(f"A frame needs at least 1 channel and 1×1 pixels, got {self.shape}.")
        amplitude = tuple(float(a) for a in self.amplitude) or (DEFAULT_AMPLITUDE,) * self.channels
        if len(amplitude) == 1:
            amplitude = amplitude * self.channels
        if len(amplitude) != self.channels or not all(math.isfinite(a) and a > 0 for a in amplitude):
            raise StimulusError(
                f"amplitude {self.amplitude} must be one positive number or one per channel "
                f"({self.channels})."
            )
        object.__setattr__(self, "amplitude", amplitude)
        for name in ("frame_rate_hz", "pixel_size_um"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise StimulusError(f"{name} must be a positive number, got {value}.")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels, self.height, self.width

    @classmethod
    def from_data_info(
        cls,
        data_info: Mapping[str, Any] | None,
        *,
        input_shape: Sequence[int] | None = None,
        frame_rate_hz: float | None = None,
        pixel_size_um: float | None = None,
        amplitude: float | Sequence[float] | None = None,
    ) -> StimulusSpace:
        """The space of a model trained on data described by `data_info`; arguments given win."""
        info = data_info or {}
        shape = input_shape if input_shape is not None else info.get("input_shape")
        if shape is None:
            raise StimulusError("The model's input shape is unknown: pass input_shape=(C, H, W).")
        channels, height, width = (int(v) for v in shape)
        rate = frame_rate_hz if frame_rate_hz is not None else info.get("frame_rate_hz")
        pixel = pixel_size_um if pixel_size_um is not None else info.get("pixel_size_um")
        note = None
        if amplitude is not None:
            amplitudes = (float(amplitude),) if isinstance(amplitude, int | float) else tuple(amplitude)
        else:
            amplitudes, note = _stored_amplitude(info.get("stimulus_range"), channels)
        return cls(channels, height, width, _opt_float(rate), _opt_float(pixel), tuple(amplitudes), note)

    @classmethod
    def from_model(cls, model: torch.nn.Module, **overrides: Any) -> StimulusSpace:
        """`from_data_info` with the model's `data_info` and `in_shape`."""
        shape = tuple(int(v) for v in model.in_shape)
        return cls.from_data_info(getattr(model, "data_info", None), input_shape=shape, **overrides)

    def from_raw_levels(
        self, black: Sequence[float], white: Sequence[float], data_info: Mapping[str, Any]
    ) -> StimulusSpace:
        """This space with ±1 contrast at a display's black/white (raw units of the training movie).

        The grey stays at the training mean; the amplitude is the smaller of the two distances from
        it to black and to white, in normalised units (through the stored mean and std).
        """
        norm = (data_info or {}).get("stimulus_normalisation") or {}
        mean = _per_channel(norm.get("mean", [0.0]), self.channels, "stimulus_normalisation mean")
        std = _per_channel(norm.get("std", [1.0]), self.channels, "stimulus_normalisation std")
        low = _per_channel(black, self.channels, "black")
        high = _per_channel(white, self.channels, "white")
        amplitude = []
        for c in range(self.channels):
            if not low[c] < mean[c] < high[c]:
                raise StimulusError(
                    f"Channel {c}: the training mean {mean[c]:g} does not lie between black {low[c]:g} "
                    f"and white {high[c]:g} (raw units)."
                )
            amplitude.append(min(mean[c] - low[c], high[c] - mean[c]) / std[c])
        return StimulusSpace(
            self.channels, self.height, self.width, self.frame_rate_hz, self.pixel_size_um, tuple(amplitude)
        )

    def require_frame_rate(self, what: str) -> float:
        if self.frame_rate_hz is None:
            raise StimulusError(
                f"{what} is timed in seconds, but the model's frame rate is unknown (its data_info has no "
                "frame_rate_hz): give it (frame_rate_hz=..., or --frame-rate HZ on the command line)."
            )
        return self.frame_rate_hz

    def require_pixel_size(self, what: str) -> float:
        if self.pixel_size_um is None:
            raise StimulusError(
                f"{what} is sized in µm on the retina, but the model's pixel size is unknown (its data_info "
                "has no pixel_size_um): give it (pixel_size_um=..., or --pixel-size-um UM on the command "
                "line)."
            )
        return self.pixel_size_um

    def frames(self, seconds: float, what: str) -> int:
        """`seconds` as a whole number of frames (at least 1 for a positive duration)."""
        if seconds < 0 or not math.isfinite(seconds):
            raise StimulusError(f"{what} must be a non-negative duration, got {seconds} s.")
        count = round(seconds * self.require_frame_rate(what))
        return max(count, 1) if seconds > 0 else 0

    def to_normalised(self, contrast: torch.Tensor) -> torch.Tensor:
        """Contrast movies `(K, C, T, H, W)` in the model's normalised units."""
        scale = torch.tensor(self.amplitude, dtype=torch.float32).view(1, -1, 1, 1, 1)
        return (contrast.to(torch.float32) * scale).contiguous()

    def describe(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.shape),
            "frame_rate_hz": self.frame_rate_hz,
            "pixel_size_um": self.pixel_size_um,
            "amplitude": list(self.amplitude),
            "amplitude_note": self.note,
        }


@dataclass
class StimulusSet:
    """Movies `(K, C, T, H, W)` in normalised units, one per condition, and how they were made."""

    name: str
    movies: torch.Tensor
    conditions: list[dict[str, Any]]
    frame_rate_hz: float
    segments: dict[str, tuple[int, int]] = field(default_factory=dict)  # named frame ranges
    parameters: dict[str, Any] = field(default_factory=dict)  # the settings, JSON-ready
    contrast: torch.Tensor | None = None  # (K, C, T) full-field contrast, for full-field stimuli

    def __len__(self) -> int:
        return int(self.movies.shape[0])

    @property
    def frames(self) -> int:
        return int(self.movies.shape[2])


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _per_channel(values: Any, channels: int, what: str) -> list[float]:
    seq = [float(v) for v in (values if isinstance(values, Sequence) else [values])]
    if len(seq) == 1:
        seq = seq * channels
    if len(seq) != channels:
        raise StimulusError(f"{what}: {len(seq)} values for {channels} channels; give 1 or {channels}.")
    return seq


def _stored_amplitude(stored: Any, channels: int) -> tuple[tuple[float, ...], str | None]:
    low, high = (stored or {}).get("min"), (stored or {}).get("max")
    if low is None or high is None:
        return (DEFAULT_AMPLITUDE,) * channels, (
            f"This model stores no training stimulus range; contrast 1 is {DEFAULT_AMPLITUDE:g} normalised "
            "unit (one training standard deviation when the movie was z-scored)."
        )
    lows, highs = (
        _per_channel(low, channels, "stimulus_range min"),
        _per_channel(high, channels, "stimulus_range max"),
    )
    amplitude = tuple(min(-lo, hi) for lo, hi in zip(lows, highs, strict=True))
    if any(a <= 0 for a in amplitude):
        return (DEFAULT_AMPLITUDE,) * channels, (
            f"The training stimulus range excludes the mean grey in some channel; contrast 1 is "
            f"{DEFAULT_AMPLITUDE:g} normalised unit."
        )
    return amplitude, None


def _channel_sets(space: StimulusSpace, per_channel: bool) -> list[tuple[str, list[int]]]:
    """Which channels each colour condition drives: all together, or each alone."""
    if per_channel and space.channels > 1:
        return [(str(c), [c]) for c in range(space.channels)]
    return [("all", list(range(space.channels)))]


def _full_field(space: StimulusSpace, trace: np.ndarray, channels: list[int]) -> torch.Tensor:
    """A contrast movie `(C, T, H, W)` whose `channels` follow `trace` (T,) and the others stay grey."""
    movie = torch.zeros(space.channels, len(trace), space.height, space.width)
    values = torch.as_tensor(trace, dtype=torch.float32)[:, None, None]
    for c in channels:
        movie[c] = values
    return movie


def _check_contrast(contrast: float, what: str = "contrast") -> float:
    if not (math.isfinite(contrast) and 0 < abs(contrast) <= 1):
        raise StimulusError(f"{what} {contrast} must lie in [-1, 1] and not be 0 (1 = full contrast).")
    return float(contrast)


def _full_field_set(
    name: str,
    space: StimulusSpace,
    trace: np.ndarray,
    colours: list[tuple[str, list[int]]],
    rate: float,
    segments: dict[str, tuple[int, int]],
    parameters: dict[str, Any],
) -> StimulusSet:
    """One full-field movie of the contrast `trace` per channel set: the chirp's and the flashes' form."""
    contrast_movies = torch.stack([_full_field(space, trace, chans) for _, chans in colours])
    return StimulusSet(
        name,
        space.to_normalised(contrast_movies),
        [{"channel": label} for label, _ in colours],
        rate,
        segments,
        parameters,
        contrast=contrast_movies[:, :, :, 0, 0].clone(),
    )


def chirp(
    space: StimulusSpace,
    *,
    dark_s: float = 2.0,
    light_s: float = 3.0,
    dark_step_s: float = 3.0,
    mean_s: float = 2.0,
    frequency_sweep_s: float = 8.0,
    frequency_max_hz: float = 8.0,
    contrast_sweep_s: float = 8.0,
    contrast_frequency_hz: float = 2.0,
    final_dark_s: float = 3.0,
    contrast: float = 1.0,
    per_channel: bool = False,
) -> StimulusSet:
    """The full-field "chirp" (Baden et al. 2016, Euler lab's QDSpy script): a dark → light → dark
    step, mean grey, a sine whose frequency rises linearly from 0 to `frequency_max_hz` over
    `frequency_sweep_s`, mean grey, a `contrast_frequency_hz` sine whose contrast ramps from 0 to
    `contrast` over `contrast_sweep_s`, mean grey and dark. The defaults total 33 s.

    One condition with every channel together, or one per channel (`per_channel`), the others grey.
    """
    what = "The chirp"
    contrast = _check_contrast(contrast)
    rate = space.require_frame_rate(what)
    for name, hz in (
        ("frequency_max_hz", frequency_max_hz),
        ("contrast_frequency_hz", contrast_frequency_hz),
    ):
        if not (math.isfinite(hz) and 0 < hz < rate / 2):
            raise StimulusError(
                f"The chirp's {name}={hz:g} Hz cannot be shown at {rate:g} frames/s: it must be positive and "
                f"below half the frame rate ({rate / 2:g} Hz). Lower it."
            )
    parts: list[tuple[str, np.ndarray]] = []

    def add(name: str, seconds: float, values: Any) -> None:
        count = space.frames(seconds, f"The chirp's {name} duration")
        t = np.arange(count) / rate
        parts.append(
            (name, np.broadcast_to(values(t) if callable(values) else values, (count,)).astype(np.float32))
        )

    add("dark", dark_s, -contrast)
    add("light_step", light_s, contrast)
    add("dark_step", dark_step_s, -contrast)
    add("mean_before_frequency", mean_s, 0.0)
    slope = frequency_max_hz / max(frequency_sweep_s, 1e-9)  # Hz per second
    add("frequency_sweep", frequency_sweep_s, lambda t: contrast * np.sin(math.pi * slope * t**2))
    add("mean_before_contrast", mean_s, 0.0)
    add(
        "contrast_sweep",
        contrast_sweep_s,
        lambda t: contrast * (t / contrast_sweep_s) * np.sin(2 * math.pi * contrast_frequency_hz * t),
    )
    add("mean_after_contrast", mean_s, 0.0)
    add("final_dark", final_dark_s, -contrast)
    segments, start = {}, 0
    for name, values in parts:
        segments[name] = (start, start + len(values))
        start += len(values)
    trace = np.concatenate([values for _, values in parts])
    colours = _channel_sets(space, per_channel)
    parameters = {
        "dark_s": dark_s,
        "light_s": light_s,
        "dark_step_s": dark_step_s,
        "mean_s": mean_s,
        "frequency_sweep_s": frequency_sweep_s,
        "frequency_max_hz": frequency_max_hz,
        "contrast_sweep_s": contrast_sweep_s,
        "contrast_frequency_hz": contrast_frequency_hz,
        "final_dark_s": final_dark_s,
        "contrast": contrast,
        "per_channel": per_channel,
    }
    return _full_field_set("chirp", space, trace, colours, rate, segments, parameters)


def flashes(
    space: StimulusSpace,
    *,
    pre_s: float = 1.0,
    step_s: float = 2.0,
    gap_s: float = 2.0,
    contrast: float = 1.0,
    per_channel: bool = True,
) -> StimulusSet:
    """Full-field steps from the mean grey: an increment (`+contrast` for `step_s`), grey for `gap_s`,
    a decrement (`-contrast` for `step_s`), grey for `gap_s`; segments `baseline`, `increment`,
    `after_increment`, `decrement`, `after_decrement`. One condition per channel (`per_channel`, the
    others grey) plus, for several channels, one with all channels together."""
    contrast = _check_contrast(contrast)
    rate = space.require_frame_rate("The flashes")
    lengths = [
        ("baseline", space.frames(pre_s, "The flashes' pre_s"), 0.0),
        ("increment", space.frames(step_s, "The flashes' step_s"), contrast),
        ("after_increment", space.frames(gap_s, "The flashes' gap_s"), 0.0),
        ("decrement", space.frames(step_s, "The flashes' step_s"), -contrast),
        ("after_decrement", space.frames(gap_s, "The flashes' gap_s"), 0.0),
    ]
    if lengths[0][1] < 1 or lengths[1][1] < 2:
        raise StimulusError("The flashes need pre_s of at least one frame and step_s of at least two frames.")
    segments, start, pieces = {}, 0, []
    for name, count, value in lengths:
        segments[name] = (start, start + count)
        start += count
        pieces.append(np.full(count, value, dtype=np.float32))
    trace = np.concatenate(pieces)
    colours = _channel_sets(space, per_channel)
    if len(colours) > 1:
        colours.append(("all", list(range(space.channels))))
    parameters = {
        "pre_s": pre_s,
        "step_s": step_s,
        "gap_s": gap_s,
        "contrast": contrast,
        "per_channel": per_channel,
    }
    return _full_field_set("flashes", space, trace, colours, rate, segments, parameters)


def _require_spatial(space: StimulusSpace, what: str) -> None:
    if space.height < 2 or space.width < 2:
        raise UnshowableStimulus(
            f"{what} need frames of at least 2×2 pixels; this model sees {space.height}×{space.width} "
            "(a full-field model): it cannot show them."
        )


def _directions(directions: int | Sequence[float]) -> list[float]:
    if isinstance(directions, int):
        if directions < 1:
            raise StimulusError(f"directions must be at least 1, got {directions}.")
        return [360.0 * i / directions for i in range(directions)]
    values = [float(d) % 360.0 for d in directions]
    if not values:
        raise StimulusError("Give at least one direction.")
    return values


def _pixel_grid(space: StimulusSpace) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in pixels, x to the right and y up, origin at the frame centre."""
    rows = torch.arange(space.height, dtype=torch.float64)
    cols = torch.arange(space.width, dtype=torch.float64)
    y = (space.height - 1) / 2 - rows  # up is positive
    x = cols - (space.width - 1) / 2
    return x[None, :].expand(space.height, -1), y[:, None].expand(-1, space.width)


def moving_bars(
    space: StimulusSpace,
    *,
    directions: int | Sequence[float] = 8,
    width_um: float = 300.0,
    speed_um_per_s: float = 1000.0,
    contrast: float = 1.0,
    background: float = 0.0,
    pad_s: float = 0.5,
    per_channel: bool = False,
) -> StimulusSet:
    """A bar (`width_um` wide along its motion, spanning the frame across it) moving at
    `speed_um_per_s` through the frame centre in each direction, at `contrast` on a `background`
    (0 = mean grey; Baden et al. 2016 used a bright bar, 300 µm at 1 mm/s, on a dark screen:
    `background=-1`). Every direction lasts the same time: `pad_s` of background, the sweep from
    just outside the frame to just outside the far side (for the frame's longest crossing), `pad_s`.
    Pixels on the bar's edges get the covered fraction. One condition per direction (and per channel
    when `per_channel`)."""
    what = "Moving bars"
    _require_spatial(space, what)
    contrast = _check_contrast(contrast)
    if not (math.isfinite(background) and abs(background) <= 1):
        raise StimulusError(f"background {background} must lie in [-1, 1].")
    rate = space.require_frame_rate(what)
    pixel = space.require_pixel_size(what)
    width_px = width_um / pixel
    side = min(space.height, space.width)
    if not (math.isfinite(width_px) and width_px > 0):
        raise StimulusError(f"The bar width must be positive, got {width_um} µm.")
    if width_px > side:
        raise StimulusError(
            f"A bar {width_um:g} µm wide is {width_px:.1f} pixels, wider than the frame's shorter side "
            f"({side} pixels = {side * pixel:g} µm at {pixel:g} µm per pixel). Use a width of at most "
            f"{side * pixel:g} µm."
        )
    step = speed_um_per_s / pixel / rate  # pixels per frame
    if not (math.isfinite(step) and step > 0):
        raise StimulusError(f"The bar speed must be positive, got {speed_um_per_s} µm/s.")
    if step > side:
        raise StimulusError(
            f"A bar at {speed_um_per_s:g} µm/s moves {step:.1f} pixels per frame, more than the frame's "
            f"shorter side ({side} pixels) in one frame at {rate:g} frames/s: it would skip the frame. "
            f"Use at most {side * pixel * rate:g} µm/s."
        )
    angles = _directions(directions)
    x, y = _pixel_grid(space)
    half_extent = 0.5 * math.hypot(space.width, space.height)
    travel = 2 * half_extent + width_px  # from fully outside to fully outside, in any direction
    sweep = math.ceil(travel / step) + 1
    pad = space.frames(pad_s, "The bars' pad_s")
    frames = pad + sweep + pad
    positions = -half_extent - width_px / 2 + step * torch.arange(sweep, dtype=torch.float64)
    colours = _channel_sets(space, per_channel)
    movies, conditions = [], []
    for name, chans in colours:
        for angle in angles:
            theta = math.radians(angle)
            along = x * math.cos(theta) + y * math.sin(theta)  # (H, W) position along the motion
            lead = positions[:, None, None] + width_px / 2
            trail = positions[:, None, None] - width_px / 2
            cover = (torch.minimum(along + 0.5, lead) - torch.maximum(along - 0.5, trail)).clamp(0, 1)
            movie = torch.full((space.channels, frames, space.height, space.width), float(background))
            bar = background + (contrast - background) * cover.to(torch.float32)
            for c in chans:
                movie[c, pad : pad + sweep] = bar
            movies.append(movie)
            conditions.append({"direction_deg": angle, "channel": name})
    parameters = {
        "directions_deg": angles,
        "width_um": width_um,
        "speed_um_per_s": speed_um_per_s,
        "contrast": contrast,
        "background": background,
        "pad_s": pad_s,
        "per_channel": per_channel,
        "pixels_per_frame": step,
    }
    return StimulusSet(
        "bars",
        space.to_normalised(torch.stack(movies)),
        conditions,
        rate,
        {
            "background_before": (0, pad),
            "sweep": (pad, pad + sweep),
            "background_after": (pad + sweep, frames),
        },
        parameters,
    )


def default_spatial_frequencies(space: StimulusSpace) -> list[float]:
    """Cycles/µm whose periods are 1, 1/2, 1/4... of the frame's longer side, down to 4 pixels."""
    pixel = space.require_pixel_size("Drifting gratings")
    longest = max(space.height, space.width)
    periods, period = [], float(longest)
    while period >= 4.0 - 1e-9:
        periods.append(period)
        period /= 2
    if not periods:
        periods = [float(max(longest, 2))]
    return [1.0 / (p * pixel) for p in reversed(periods)]


def drifting_gratings(
    space: StimulusSpace,
    *,
    spatial_frequencies: Sequence[float] | None = None,
    temporal_frequencies_hz: Sequence[float] = (1.0, 2.0, 4.0, 8.0),
    directions: int | Sequence[float] = 8,
    unit: str = "cycles_per_um",
    um_per_degree: float | None = None,
    duration_s: float = 2.0,
    contrast: float = 1.0,
    per_channel: bool = False,
) -> StimulusSet:
    """Full-field sine gratings drifting for `duration_s` over the grid spatial × temporal frequency
    × direction. Spatial frequencies are in cycles/µm (`unit="cycles_per_um"`, default: periods of
    1, 1/2, 1/4... of the frame's longer side) or cycles/degree (`unit="cycles_per_degree"`, which
    needs `um_per_degree`, e.g. about 31 µm/° for the mouse retina). Each grating starts at phase 0
    at the frame centre. Temporal frequencies at or above half the frame rate, and spatial
    frequencies with periods under two pixels, cannot be shown and are refused."""
    what = "Drifting gratings"
    _require_spatial(space, what)
    contrast = _check_contrast(contrast)
    rate = space.require_frame_rate(what)
    pixel = space.require_pixel_size(what)
    if unit not in ("cycles_per_um", "cycles_per_degree"):
        raise StimulusError(f"unit {unit!r} must be 'cycles_per_um' or 'cycles_per_degree'.")
    if spatial_frequencies is None:
        per_um = default_spatial_frequencies(space)
        given = per_um if unit == "cycles_per_um" else None
    else:
        given = [float(f) for f in spatial_frequencies]
        if unit == "cycles_per_degree":
            if um_per_degree is None or not um_per_degree > 0:
                raise StimulusError(
                    "Spatial frequencies in cycles/degree need um_per_degree (µm on the retina per degree of "
                    "visual angle, about 31 for the mouse); give it, or give cycles/µm."
                )
            per_um = [f / um_per_degree for f in given]
        else:
            per_um = given
    if not per_um:
        raise StimulusError("Give at least one spatial frequency.")
    for f in per_um:
        if not (math.isfinite(f) and f > 0):
            raise StimulusError(f"Spatial frequencies must be positive, got {f} cycles/µm.")
        if f * pixel > 0.5:
            raise StimulusError(
                f"A spatial frequency of {f:g} cycles/µm has a period of {1 / (f * pixel):.2f} pixels; the "
                f"frame ({pixel:g} µm per pixel) cannot show periods under 2 pixels "
                f"({0.5 / pixel:g} cycles/µm)."
            )
    temporal = [float(f) for f in temporal_frequencies_hz]
    if not temporal:
        raise StimulusError("Give at least one temporal frequency.")
    for f in temporal:
        if not (math.isfinite(f) and 0 < f < rate / 2):
            raise StimulusError(
                f"A temporal frequency of {f:g} Hz cannot be shown at {rate:g} frames/s: it must be positive "
                f"and below half the frame rate ({rate / 2:g} Hz)."
            )
    side = min(space.height, space.width)
    for sf in per_um:
        for tf in temporal:
            step = tf / sf / pixel / rate
            if step > side:
                raise StimulusError(
                    f"A grating of {sf:g} cycles/µm at {tf:g} Hz moves {step:.1f} pixels per frame, "
                    f"more than the frame's shorter side ({side} pixels); lower the temporal frequency."
                )
    angles = _directions(directions)
    frames = space.frames(duration_s, "The gratings' duration_s")
    if frames < 2:
        raise StimulusError("The gratings' duration_s must last at least two frames.")
    x, y = _pixel_grid(space)
    t = torch.arange(frames, dtype=torch.float64) / rate
    colours = _channel_sets(space, per_channel)
    movies, conditions = [], []
    for name, chans in colours:
        for i, sf in enumerate(per_um):
            k = sf * pixel  # cycles per pixel
            for tf in temporal:
                for angle in angles:
                    theta = math.radians(angle)
                    along = x * math.cos(theta) + y * math.sin(theta)
                    phase = 2 * math.pi * (k * along[None] - tf * t[:, None, None])
                    wave = (contrast * torch.cos(phase)).to(torch.float32)
                    movie = torch.zeros(space.channels, frames, space.height, space.width)
                    for c in chans:
                        movie[c] = wave
                    movies.append(movie)
                    condition: dict[str, Any] = {
                        "spatial_frequency_cycles_per_um": sf,
                        "temporal_frequency_hz": tf,
                        "direction_deg": angle,
                        "channel": name,
                    }
                    if unit == "cycles_per_degree" and given is not None:
                        condition["spatial_frequency_cycles_per_degree"] = given[i]
                    conditions.append(condition)
    parameters = {
        "spatial_frequencies_cycles_per_um": per_um,
        "temporal_frequencies_hz": temporal,
        "directions_deg": angles,
        "unit": unit,
        "um_per_degree": um_per_degree,
        "duration_s": duration_s,
        "contrast": contrast,
        "per_channel": per_channel,
    }
    return StimulusSet(
        "gratings",
        space.to_normalised(torch.stack(movies)),
        conditions,
        rate,
        {"drift": (0, frames)},
        parameters,
    )


def dense_noise(
    space: StimulusSpace,
    *,
    duration_s: float | None = None,
    frames: int | None = None,
    kind: str = "binary",
    check_um: float | None = None,
    contrast: float = 1.0,
    seed: int = 0,
) -> StimulusSet:
    """Independent noise per channel, pixel (or `check_um` square check) and frame: `binary` (±contrast)
    or `gaussian` (standard deviation `contrast`, clipped at ±1). One condition. Give `duration_s`
    (needs the frame rate) or `frames`; the same seed gives the same noise."""
    if kind not in ("binary", "gaussian"):
        raise StimulusError(f"Noise kind {kind!r} must be 'binary' or 'gaussian'.")
    contrast = _check_contrast(contrast)
    if (duration_s is None) == (frames is None):
        raise StimulusError("Give the noise's length as duration_s or as frames (one of them).")
    count = int(frames) if frames is not None else space.frames(float(duration_s), "The noise's duration_s")
    if count < 1:
        raise StimulusError(f"The noise needs at least one frame, got {count}.")
    check = 1
    if check_um is not None:
        check = max(1, round(check_um / space.require_pixel_size("Noise checks")))
    rows, cols = math.ceil(space.height / check), math.ceil(space.width / check)
    generator = torch.Generator().manual_seed(int(seed))
    shape = (1, space.channels, count, rows, cols)
    if kind == "binary":
        values = torch.randint(0, 2, shape, generator=generator).to(torch.float32) * 2 - 1
        values = values * contrast
    else:
        values = (torch.randn(shape, generator=generator) * contrast).clamp(-1, 1)
    if check > 1:
        values = values.repeat_interleave(check, dim=3).repeat_interleave(check, dim=4)
        values = values[..., : space.height, : space.width]
    rate = space.frame_rate_hz if space.frame_rate_hz is not None else float("nan")
    parameters = {"kind": kind, "frames": count, "check_pixels": check, "contrast": contrast, "seed": seed}
    return StimulusSet(
        "noise", space.to_normalised(values), [{"channel": "all"}], rate, {"noise": (0, count)}, parameters
    )
