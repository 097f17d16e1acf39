"""The toy comparison: every (energy, method, seed) → samples → metrics, a table (CSV + Markdown) and a figure."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from pathlib import Path
from typing import Callable, Sequence

import jax
import numpy as np

from boltzrl import metrics
from boltzrl.sampling.energies import Energy, grid_sample
from boltzrl.sampling.methods import SamplerConfig, method_applies
from boltzrl.sampling.runner import run_method

KL_BINS = 40  # cells per axis of the KL grid
MMD_POINTS = 2000  # MMD uses the first 2000 samples of each set (its cost is quadratic)
COVERAGE_FRACTION = 0.1  # a mode is covered when it holds ≥ 10% of the samples its weight predicts
REFERENCE_SEED = 10_000  # key of the reference samples, distinct from every method seed
EXACT = "exact"  # a row of fresh exact samples: the floor that sampling noise puts under every metric

# Per-energy settings of the benchmark (the rest is SamplerConfig's defaults). RSSM's cost grows with mixture
# components × draws, so the big mixtures use fewer draws and smaller batches (for every method alike). Their
# modes have equal weights, which hides the bias of few draws towards equal weights; the unequal two-mode GMM
# keeps the default 512 draws.
ENERGY_CONFIGS: dict[str, dict] = {
    "gmm40": dict(num_draws=128, batch_size=128),
    "two_moons": dict(num_draws=128, batch_size=128),
}

FIELDS = (
    "energy",
    "method",
    "seed",
    "mmd",
    "kl",
    "mode_weight_error",
    "modes_covered",
    "num_modes",
    "train_s",
    "train_cpu_s",
    "sample_s",
    "compile_s",
)


def config_for(energy_name: str, base: SamplerConfig = SamplerConfig(), **overrides) -> SamplerConfig:
    return dataclasses.replace(base, **{**ENERGY_CONFIGS.get(energy_name, {}), **overrides})


def reference_samples(energy: Energy, n: int) -> np.ndarray | None:
    """Exact samples where the energy has a sampler, otherwise draws from a fine grid (dimension ≤ 3), else None."""
    key = jax.random.key(REFERENCE_SEED)
    if energy.has_samples:
        return np.asarray(energy.sample(key, n))
    return np.asarray(grid_sample(energy, key, n)) if energy.dim <= 3 else None


def evaluate(energy: Energy, samples: np.ndarray, reference: np.ndarray | None) -> dict:
    """MMD to the reference (when there is one), histogram KL (dimension ≤ 3) and, for energies with known
    modes, mode statistics. NaN marks what cannot be computed."""
    samples = np.asarray(samples)
    out = dict.fromkeys(("mmd", "kl", "mode_weight_error", "modes_covered", "num_modes"), math.nan)
    if not np.isfinite(samples).all():
        return out  # a diverged sampler gets no score rather than a misleading one
    if reference is not None:
        out["mmd"] = metrics.mmd_rbf(samples[:MMD_POINTS], reference[:MMD_POINTS])
    if energy.dim <= 3:
        out["kl"] = metrics.kl_histogram(samples, energy.log_density, energy.bounds, KL_BINS)
    if energy.has_modes:
        weights, groups = np.asarray(energy.weights), energy.groups
        min_count = max(1, math.ceil(COVERAGE_FRACTION * len(samples) * weights.min()))
        out["mode_weight_error"] = metrics.mode_weight_error(samples, energy.means, weights, groups)
        out["modes_covered"] = metrics.modes_covered(samples, energy.means, energy.mode_radius, min_count, groups)
        out["num_modes"] = len(weights)
    return out


def _progress_line(done: int, total: int, row: dict) -> str:
    return (
        f"[{done}/{total}] {row['energy']:10s} {row['method']:13s} seed {row['seed']}: "
        f"train {row['train_s']:6.1f}s ({row['train_cpu_s']:.1f} CPU-s)  MMD {row['mmd']:.4f}  KL {row['kl']:.3f}  "
        f"weight err {row['mode_weight_error']:.3f}  modes {row['modes_covered']}/{row['num_modes']}"
    )


def run_comparison(
    energies: Sequence[Energy],
    methods: Sequence[str],
    seeds: Sequence[int],
    num_samples: int = 5000,
    config_overrides: dict | None = None,
    include_exact: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[list[dict], dict]:
    """Run every applicable (energy, method, seed). Returns the rows and {(energy, method, seed): samples}."""
    total = sum(method_applies(m, e) for e in energies for m in methods) * len(seeds)
    rows, samples, done = [], {}, 0
    for energy in energies:
        reference = reference_samples(energy, num_samples)
        if include_exact and energy.has_samples:
            exact = np.asarray(energy.sample(jax.random.key(REFERENCE_SEED + 1), num_samples))
            times = {"train_s": 0.0, "train_cpu_s": 0.0, "sample_s": 0.0, "compile_s": 0.0}
            scores = evaluate(energy, exact, reference)
            rows.append({"energy": energy.name, "method": EXACT, "seed": 0, **scores, **times})
            samples[(energy.name, EXACT, 0)] = exact
        config = config_for(energy.name, **(config_overrides or {}))
        for method in methods:
            if not method_applies(method, energy):
                log(f"skip {energy.name} {method}: the method needs exact samples")
                continue
            for seed in seeds:
                result = run_method(method, energy, seed, num_samples, config)
                times = {"train_s": result.train_time, "train_cpu_s": result.train_cpu_time,
                         "sample_s": result.sample_time, "compile_s": result.compile_time}
                scores = evaluate(energy, result.samples, reference)
                rows.append({"energy": energy.name, "method": method, "seed": seed, **scores, **times})
                samples[(energy.name, method, seed)] = result.samples
                done += 1
                log(_progress_line(done, total, rows[-1]))
    return rows, samples


# ------------------------------------------------------------------------------------------- outputs


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_csv(rows: list[dict], path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    os.replace(tmp, path)


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds for every (energy, method), in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["energy"], row["method"]), []).append(row)
    summary = []
    for (energy, method), group in groups.items():
        entry = {"energy": energy, "method": method, "seeds": len(group)}
        for field in ("mmd", "kl", "mode_weight_error", "modes_covered", "train_s", "train_cpu_s"):
            values = np.array([g[field] for g in group], np.float64)
            entry[field] = (float(np.mean(values)), float(np.std(values)))
        entry["num_modes"] = group[0]["num_modes"]
        summary.append(entry)
    return summary


def _cell(mean_std: tuple[float, float], digits: int) -> str:
    mean, std = mean_std
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| energy | method | seeds | MMD ↓ | KL ↓ | mode-weight error ↓ | modes covered "
        "| train wall (s) | train CPU (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summarise(rows):
        modes = "–" if math.isnan(s["modes_covered"][0]) else f"{_cell(s['modes_covered'], 1)} / {s['num_modes']}"
        lines.append(
            f"| {s['energy']} | {s['method']} | {s['seeds']} | {_cell(s['mmd'], 4)} | {_cell(s['kl'], 3)} | "
            f"{_cell(s['mode_weight_error'], 3)} | {modes} | {_cell(s['train_s'], 1)} | "
            f"{_cell(s['train_cpu_s'], 1)} |"
        )
    return "\n".join(lines) + "\n"


def plot_samples(energies: Sequence[Energy], methods: Sequence[str], samples: dict, path: Path, seed: int) -> None:
    """One row per energy: the true density, then each method's samples (seed `seed`), on the same box."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    energies = [e for e in energies if e.dim == 2]
    if not energies:
        return
    columns = [EXACT] + [m for m in methods if m != EXACT]
    size = (2.4 * (len(columns) + 1), 2.4 * len(energies))
    fig, axes = plt.subplots(len(energies), len(columns) + 1, figsize=size, squeeze=False)
    for i, (row, energy) in enumerate(zip(axes, energies)):
        (x0, x1), (y0, y1) = energy.bounds
        xs, ys = np.meshgrid(np.linspace(x0, x1, 200), np.linspace(y0, y1, 200))
        log_p = np.asarray(energy.log_density(np.stack([xs.ravel(), ys.ravel()], -1))).reshape(xs.shape)
        density = np.exp(log_p - log_p.max())
        row[0].imshow(density, origin="lower", extent=(x0, x1, y0, y1), cmap="viridis", aspect="auto")
        row[0].set_ylabel(energy.name)
        if i == 0:
            row[0].set_title("true density")
        for ax, method in zip(row[1:], columns):
            points = samples.get((energy.name, method, 0 if method == EXACT else seed))
            if points is not None:
                ax.hist2d(points[:, 0], points[:, 1], bins=100, range=energy.bounds, cmap="viridis")
            else:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
            if i == 0:
                ax.set_title("exact samples" if method == EXACT else method)
        for ax in row:
            ax.set_xlim(x0, x1)
            ax.set_ylim(y0, y1)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def write_outputs(rows: list[dict], samples: dict, energies, methods, out_dir: Path, seed: int) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path = out_dir / "results.csv", out_dir / "results.md", out_dir / "samples.png"
    write_csv(rows, csv_path)
    _atomic_write(md_path, markdown_table(rows))
    plot_samples(energies, methods, samples, png_path, seed)
    return [csv_path, md_path, png_path]
