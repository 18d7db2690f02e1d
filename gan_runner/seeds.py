"""Seeds as a dimension: runs that differ only in `seed` form a group, and a group's number is
mean +- std (ddof 1) over its n seeds. Pure Python on params/metrics dicts: gan_runner.compare
prints and plots the groups, tracking.log_seed_aggregate logs them on a sweep's parent run.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import dataclass, field

SEED_PARAMS = ("seed",)  # what may differ inside a group
# params that differ between jobs without being settings: where each job writes
PER_JOB_PARAMS = ("tracking.run_name", "resume", "hydra.job.num")


@dataclass
class Group:
    label: str  # the settings that tell it from the other groups ("lr:0.001"), or "all"
    indices: list[int] = field(default_factory=list)  # positions of its runs in the input

    @property
    def n(self) -> int:
        return len(self.indices)


def setting_keys(params: list[dict[str, str]]) -> list[str]:
    """The param keys whose values differ between runs, other than the seed and per-job keys."""
    keys = sorted({k for p in params for k in p} - set(SEED_PARAMS) - set(PER_JOB_PARAMS))
    return [k for k in keys if len({p.get(k) for p in params}) > 1]


def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1] if key.count(".") > 1 else key


def group_label(values: dict[str, str | None]) -> str:
    """'key:value key:value' in MLflow's metric-name alphabet (letters, digits, _ - . : / space)."""
    text = " ".join(f"{_short(k)}:{'-' if v is None else v}" for k, v in values.items()) or "all"
    return re.sub(r"[^\w.\- :/]", "_", text)


def group_runs(params: list[dict[str, str]]) -> list[Group]:
    """Runs with equal settings (all params but the seed and per-job keys), in first-seen order."""
    keys = setting_keys(params)
    groups: dict[tuple, Group] = {}
    for i, p in enumerate(params):
        values = tuple(p.get(k) for k in keys)
        groups.setdefault(values, Group(group_label(dict(zip(keys, values))))).indices.append(i)
    return list(groups.values())


def seeds_repeat(params: list[dict[str, str]]) -> bool:
    """True when some setting was run with more than one seed: grouping says something."""
    return any(g.n > 1 for g in group_runs(params))


def mean_std(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample std (ddof 1; NaN for one value), n) of the finite values."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, 0
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else math.nan, len(finite)


def aggregate(
    params: list[dict[str, str]], metrics: list[dict[str, float]], prefixes=("eval/", "best/")
) -> dict[str, float]:
    """agg/<group>/<metric>_mean and _std (and _n) for every metric under `prefixes` that a
    group's runs logged: what a sweep's parent run gets."""
    out: dict[str, float] = {}
    for group in group_runs(params):
        names = sorted({k for i in group.indices for k in metrics[i] if k.startswith(tuple(prefixes))})
        for name in names:
            mean, std, n = mean_std([metrics[i].get(name, math.nan) for i in group.indices])
            if n:
                out[f"agg/{group.label}/{name}_mean"] = mean
                if n > 1:
                    out[f"agg/{group.label}/{name}_std"] = std
                out[f"agg/{group.label}/{name}_n"] = float(n)
    return out


def fmt_mean_std(mean: float, std: float, n: int) -> str:
    if n == 0:
        return "-"
    return f"{mean:.4g} +- {std:.2g} (n={n})" if n > 1 else f"{mean:.4g} (n=1)"
