"""Small matplotlib helpers (Agg backend, atomic PNG output) shared by stats and reports."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from reloblur.atomic import atomic_write_bytes  # noqa: E402


def save_figure(fig: plt.Figure, path: str | os.PathLike[str]) -> None:
    """Render ``fig`` to PNG at ``path`` atomically and close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def blur_ratio_histogram(
    ratios_by_group: Mapping[str, Sequence[float]],
    path: str | os.PathLike[str],
    *,
    title: str = "Blur ratio per pair",
    bins: int = 25,
) -> None:
    """Stacked histogram of blur ratios (fraction of blurred pixels) in percent.

    The axis ends at the largest ratio rounded up to 10 %, so typical datasets (most
    masks under a third of the image) get fine bins.
    """
    fig, ax = plt.subplots(figsize=(7, 4))
    groups = [k for k, v in ratios_by_group.items() if len(v)]
    data = [100 * np.asarray(ratios_by_group[k], float) for k in groups]
    top = max([10.0] + [10.0 * np.ceil(d.max() / 10.0) for d in data])
    edges = np.linspace(0, min(top, 100.0), bins + 1)
    if data:
        ax.hist(data, bins=list(edges), stacked=True, label=groups, edgecolor="white")
        every = np.concatenate(data)
        ax.axvline(every.mean(), color="black", linestyle="--", label=f"mean {every.mean():.2f} %")
        ax.legend()
    ax.set_xlabel("blurred pixels (% of image)")
    ax.set_ylabel("pairs")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    save_figure(fig, path)
