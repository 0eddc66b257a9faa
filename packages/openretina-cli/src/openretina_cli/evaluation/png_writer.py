"""One way to write a matplotlib figure as a PNG, shared by the report and `characterise`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def save_png(figure: Any, path: Path, dpi: int) -> Path:
    """Draw `figure` once at `dpi` and write it as an RGB PNG at zlib's fastest level.

    `savefig` draws a figure with a layout engine twice (once only to place it); the plots are
    mostly flat colour, so the fastest level costs a few percent in size and saves half the
    encoding time, as does leaving out the alpha channel (always opaque here). The renderer's
    pixel buffer (megabytes at this resolution) is released at once: a figure lives in reference
    cycles that only the cyclic collector frees, late, so many figures would pile up in memory."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(figure)
    figure.set_dpi(dpi)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[:, :, :3]
    Image.fromarray(pixels).save(path, format="PNG", compress_level=1, dpi=(dpi, dpi))
    del pixels
    vars(canvas.renderer).clear()
    return path
