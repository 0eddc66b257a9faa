"""A figure and a short video per optimised stimulus.

The figure shows, per colour channel, the spatial map at the peak frame (the frame of most
energy), the temporal trace at the peak pixel and that trace's amplitude spectrum. The video shows
every frame, channels side by side: an mp4 when imageio and its ffmpeg plugin are installed,
otherwise a GIF written with Pillow (which matplotlib always brings), so it never fails for want of
an encoder. matplotlib draws on the Agg canvas and is imported only here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
VIDEO_SCALE = 12  # screen pixels per stimulus pixel
GAP = 4  # pixels between channel panels in a video frame


def peak(stimulus: np.ndarray) -> tuple[int, int, int]:
    """(frame, row, column) of a (C, T, H, W) stimulus: its frame of most energy, and there the
    pixel of largest absolute value over channels."""
    frame = int((stimulus**2).sum(axis=(0, 2, 3)).argmax())
    row, column = np.unravel_index(np.abs(stimulus[:, frame]).max(axis=0).argmax(), stimulus.shape[2:])
    return frame, int(row), int(column)


def _stem(entry: dict[str, Any]) -> str:
    tensor = str(entry["tensor"]).replace("/", "_").replace(" ", "_")
    if "neuron" in entry:
        return f"{tensor}_neuron_{entry['neuron']:04d}"
    if "channel" in entry:
        return f"{tensor}_channel_{entry['channel']:03d}"
    return f"{tensor}_cluster_{entry['index']:03d}"


def _title(entry: dict[str, Any]) -> str:
    if "neuron" in entry:
        what = f"{entry['tensor']} neuron {entry['neuron']} (id {entry['neuron_id']})"
    elif "channel" in entry:
        what = f"{entry['tensor']} channel {entry['channel']}"
    else:
        what = f"{entry['tensor']} group {entry['cluster']!r}"
    return f"{what}: objective {entry['objective']:.3g} (start {entry['start_objective']:.3g})"


def draw_target(
    out: Path, entry: dict[str, Any], stimulus: np.ndarray, names: list[str], frame_rate_hz: float | None
) -> dict[str, str]:
    """Write the figure and the video of one stimulus (C, T, H, W); return their paths under `out`."""
    stem = _stem(entry)
    (out / "figures").mkdir(exist_ok=True)
    (out / "videos").mkdir(exist_ok=True)
    figure = Path("figures") / f"{stem}.png"
    draw_figure(out / figure, stimulus, names, frame_rate_hz, _title(entry))
    video = write_video(out / "videos" / stem, stimulus, frame_rate_hz or 30.0)
    return {"figure": str(figure), "video": str(video.relative_to(out))}


def draw_figure(
    path: Path, stimulus: np.ndarray, names: list[str], frame_rate_hz: float | None, title: str
) -> Path:
    channels, frames = stimulus.shape[:2]
    frame, row, column = peak(stimulus)
    limit = float(np.abs(stimulus).max()) or 1.0
    figure = Figure(figsize=(9.0, 2.3 * channels + 0.6), layout="constrained")
    axes = figure.subplots(channels, 3, squeeze=False, gridspec_kw={"width_ratios": [1, 1.6, 1.2]})
    rate = frame_rate_hz or 1.0
    unit = "s" if frame_rate_hz else "frames"
    time = (np.arange(frames) - (frames - 1)) / rate  # 0 = the last frame
    for c in range(channels):
        spatial, trace_ax, spectrum_ax = axes[c]
        image = spatial.imshow(stimulus[c, frame], cmap="RdBu_r", vmin=-limit, vmax=limit)
        spatial.plot([column], [row], marker="+", color="black")
        spatial.set_title(f"{names[c]}: frame {frame}", fontsize=9)
        spatial.set_xticks([])
        spatial.set_yticks([])
        figure.colorbar(image, ax=spatial, shrink=0.8)
        trace = stimulus[c, :, row, column]
        trace_ax.plot(time, trace, color=f"C{c}")
        trace_ax.axvline(time[frame], color="grey", linestyle=":")
        trace_ax.axhline(0.0, color="grey", linewidth=0.5)
        trace_ax.set_ylim(-limit * 1.05, limit * 1.05)
        trace_ax.set_title(f"{names[c]}: trace at pixel ({row}, {column})", fontsize=9)
        trace_ax.set_xlabel(f"time ({unit}, 0 = last frame)")
        spectrum = np.abs(np.fft.rfft(trace - trace.mean()))
        frequencies = np.fft.rfftfreq(frames, d=1.0 / rate)
        spectrum_ax.plot(frequencies, spectrum, color=f"C{c}", marker=".")
        spectrum_ax.set_title(f"{names[c]}: amplitude spectrum", fontsize=9)
        spectrum_ax.set_xlabel("frequency (Hz)" if frame_rate_hz else "frequency (cycles/frame)")
    figure.suptitle(title, fontsize=10)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI)
    return path


def video_frames(stimulus: np.ndarray) -> np.ndarray:
    """(T, rows, columns, 3) uint8: channels side by side, blue-white-red around 0, enlarged."""
    channels, frames, height, width = stimulus.shape
    limit = float(np.abs(stimulus).max()) or 1.0
    colours = colormaps["RdBu_r"]((stimulus / limit + 1.0) / 2.0)[..., :3]  # (C, T, H, W, 3)
    colours = colours.repeat(VIDEO_SCALE, axis=2).repeat(VIDEO_SCALE, axis=3)
    h, w = height * VIDEO_SCALE, width * VIDEO_SCALE
    h_pad, w_pad = h + (-h) % 16, channels * (w + GAP) - GAP  # mp4 encoders want multiples of 16
    w_pad += (-w_pad) % 16
    canvas = np.ones((frames, h_pad, w_pad, 3))
    for c in range(channels):
        left = c * (w + GAP)
        canvas[:, :h, left : left + w] = colours[c]
    return (canvas * 255).round().astype(np.uint8)


def write_video(stem: Path, stimulus: np.ndarray, fps: float) -> Path:
    """`stem`.mp4 via imageio's ffmpeg plugin when it works, else `stem`.gif via Pillow."""
    frames = video_frames(stimulus)
    try:
        import imageio.v2 as imageio

        path = stem.with_suffix(".mp4")
        imageio.mimwrite(path, list(frames), fps=fps, macro_block_size=16)
        return path
    except Exception:  # no imageio, no ffmpeg plugin or binary: fall back to GIF below
        stem.with_suffix(".mp4").unlink(missing_ok=True)
    from PIL import Image

    path = stem.with_suffix(".gif")
    images = [Image.fromarray(frame) for frame in frames]
    duration = max(20, round(1000.0 / fps))
    images[0].save(path, save_all=True, append_images=images[1:], duration=duration, loop=0)
    return path
