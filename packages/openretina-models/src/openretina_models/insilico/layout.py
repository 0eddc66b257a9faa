"""Which memory layout the model sees the stimuli in: whichever runs faster on this machine.

On the CPU, oneDNN's convolutions run a batch of stimuli up to twice as fast in channels-last
memory (`torch.channels_last_3d`), above all the input gradient of a first layer with few input
channels, which dominates a stimulus optimisation. For a single stimulus or a small network that
layout can be slower instead. Both layouts give the same numbers up to the order of float
summation (differences around 1e-8). "auto" (the default) decides by a fixed rule, so a run is
repeatable bit for bit: channels-last for batches of `AUTO_MIN_BATCH` or more stimuli on the CPU,
the standard layout otherwise. "fastest" times the first real steps in each layout and keeps the
faster one (at the price of results that may differ by ~1e-8 from run to run). Only the copy the
model sees changes layout: the optimised tensor (and so the result) stays in the standard layout.
"""

from __future__ import annotations

import time

import torch

__all__ = ["LAYOUTS", "LayoutTrial"]

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last_3d}
"""The layouts one can ask for by name, besides "auto" (a fixed rule) and "fastest" (timed)."""

STEPS_PER_LAYOUT = 3  # the first step in a layout pays for oneDNN's set-up; the others are timed
MIN_ITERATIONS = 10  # below this, trying a second layout costs more than it can save
AUTO_MIN_BATCH = 8  # "auto": channels-last from this batch size on (CPU; 2.7x vs 1.5x at 32, measured)


class LayoutTrial:
    """Times the optimisation's first steps in each candidate layout, then keeps the fastest.

    `layout(iteration)` says which memory format to feed the model at that iteration; `record`
    takes how long that iteration's forward and backward pass took. A layout's time is the
    quickest of its timed steps, which other jobs on the machine disturb least. Off the CPU
    (where PyTorch picks its own kernels) or for short runs there is one candidate: the standard
    layout. Only `layout="fastest"` runs the trial; "auto" and the names in `LAYOUTS` fix one layout.
    """

    def __init__(self, device: torch.device, iterations: int, layout: str = "auto", batch: int = 1) -> None:
        if layout not in ("auto", "fastest") and layout not in LAYOUTS:
            raise ValueError(
                f"Unknown layout {layout!r}; use 'auto', 'fastest', {', '.join(map(repr, LAYOUTS))}."
            )
        on_cpu = device.type == "cpu"
        if layout == "auto":
            layout = "channels_last" if on_cpu and batch >= AUTO_MIN_BATCH else "contiguous"
        self.candidates = [LAYOUTS.get(layout, torch.contiguous_format)]
        if layout == "fastest" and on_cpu and iterations >= MIN_ITERATIONS:
            self.candidates.append(torch.channels_last_3d)
        self.seconds: dict[torch.memory_format, float] = {}
        self.chosen: torch.memory_format | None = None if len(self.candidates) > 1 else self.candidates[0]

    def layout(self, iteration: int) -> torch.memory_format:
        if self.chosen is not None:
            return self.chosen
        return self.candidates[min(iteration // STEPS_PER_LAYOUT, len(self.candidates) - 1)]

    def timer(self, iteration: int) -> float | None:
        """A start time when `iteration` is one of the timed steps, else None."""
        if self.chosen is None and iteration % STEPS_PER_LAYOUT != 0:
            return time.perf_counter()
        return None

    def record(self, iteration: int, started: float) -> None:
        """Note how long the timed `iteration` took; after the last candidate's steps, choose."""
        layout, seconds = self.layout(iteration), time.perf_counter() - started
        self.seconds[layout] = min(seconds, self.seconds.get(layout, seconds))
        if iteration + 1 >= STEPS_PER_LAYOUT * len(self.candidates):
            self.chosen = min(self.seconds, key=self.seconds.__getitem__)

    def settle(self) -> None:
        """Choose now (a run that ended during the trial): the faster one timed, else the standard."""
        if self.chosen is None:
            self.chosen = min(self.seconds, key=self.seconds.__getitem__, default=self.candidates[0])

    def feed(self, stimuli: torch.Tensor, iteration: int) -> torch.Tensor:
        """`stimuli` in the layout for `iteration` (a differentiable copy when it differs)."""
        return stimuli.contiguous(memory_format=self.layout(iteration))

    def describe(self) -> str:
        """The name of the layout in use (after the trial: the faster one)."""
        chosen = self.chosen or self.candidates[0]
        return next(name for name, memory_format in LAYOUTS.items() if memory_format == chosen)
