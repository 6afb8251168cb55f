"""Time-series forecasting: from `task.window` past steps, predict the next `task.horizon` steps.

Data: a user's CSV (`task.path`: a time column, target column(s), optional feature columns) or a real
series that ships with statsmodels (`task.dataset`: co2, weekly Mauna Loa CO2, or sunspots, yearly).
Splits follow time with no leakage: the series is cut into train < val < test, a window's targets all lie
in its own split (its inputs may reach back into earlier ones, which are past), and scaling is fitted on
the train segment only. Inputs and targets of the target columns are taken relative to the window's last
observed value, so a trending series stays in the range the network was trained on. Quality is RMSE (MAE
beside it) in the targets' own units; seasonal-naive and naive (last value) forecasts of the same windows
are the baselines, logged as `seasonal_naive_<split>_rmse` and `naive_<split>_rmse` (and _mae).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pipeline.config import TaskConfig
from pipeline.data import TaskSpec
from pipeline.data.base import Split, SplitData
from pipeline.errors import DataError


def _co2() -> pd.DataFrame:
    from statsmodels.datasets import co2

    series = co2.load_pandas().data["co2"].interpolate()  # 59 missing weeks, filled linearly
    return series.rename_axis("date").reset_index()


def _sunspots() -> pd.DataFrame:
    from statsmodels.datasets import sunspots

    return sunspots.load_pandas().data


SERIES: dict[str, tuple[Callable[[], pd.DataFrame], str]] = {  # name -> (loader, its time column)
    "co2": (_co2, "date"),
    "sunspots": (_sunspots, "YEAR"),
}


def read_frame(task: TaskConfig) -> tuple[pd.DataFrame, str | None]:
    """The table and its time column: the user's CSV, or a series that ships with statsmodels."""
    if task.path:
        path = Path(task.path)
        if not path.is_file():
            raise DataError(f"task.path={path}: no such file")
        try:
            return pd.read_csv(path), task.time_column
        except (ValueError, UnicodeDecodeError) as err:
            raise DataError(f"task.path={path}: not a readable CSV ({' '.join(str(err).split())[:200]})") from None
    if task.dataset not in SERIES:
        raise DataError(f"task.dataset={task.dataset}: no such series; available: {', '.join(SERIES)} (or task.path)")
    load, time = SERIES[task.dataset]
    return load(), task.time_column or time


def numeric(frame: pd.DataFrame, time: str | None) -> str:
    """Every numeric column but the time column, comma-separated: the default targets."""
    chosen = [str(c) for c in frame.columns if c != time and pd.api.types.is_numeric_dtype(frame[c])]
    if not chosen:
        raise DataError("task.target: the table has no numeric column; name the target column(s)")
    return ",".join(chosen)


def columns(frame: pd.DataFrame, key: str, names: str | None) -> list[str]:
    """The named (comma-separated) columns, each checked to exist and to be numeric without gaps."""
    chosen = [n.strip() for n in names.split(",") if n.strip()] if names else []
    for name in chosen:
        if name not in frame.columns:
            raise DataError(f"{key}={names}: no column {name!r}; columns are: {', '.join(map(str, frame.columns))}")
        values = pd.to_numeric(frame[name], errors="coerce")
        if bad := int(values.isna().sum() - frame[name].isna().sum()):
            example = frame[name][values.isna() & frame[name].notna()].iloc[0]
            raise DataError(f"{key}={names}: column {name!r} is not numeric ({bad} values such as {example!r})")
        if gaps := int(values.isna().sum()):
            raise DataError(f"{key}={names}: column {name!r} has {gaps} missing values; fill them in first")
    return chosen


def ordered(frame: pd.DataFrame, time: str | None) -> pd.DataFrame:
    """The rows in time order (file order when there is no time column)."""
    if time is None:
        return frame
    if time not in frame.columns:
        raise DataError(f"task.time_column={time}: no such column; columns are: {', '.join(map(str, frame.columns))}")
    stamps = frame[time] if pd.api.types.is_numeric_dtype(frame[time]) else pd.to_datetime(frame[time], errors="coerce")
    if stamps.isna().any():
        raise DataError(f"task.time_column={time}: {int(stamps.isna().sum())} values are not times or numbers")
    return frame.assign(_time=stamps).sort_values("_time", kind="stable").drop(columns="_time")


def seasonal_naive(series: np.ndarray, starts: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """(N, horizon, K) forecasts: each step repeats the value one season (or whole seasons) earlier."""
    steps = np.arange(horizon)
    back = season * np.ceil((steps + 1) / season).astype(int)  # the latest observed same-season step
    return series[starts[:, None] + steps[None, :] - back[None, :]]


class ForecastData(SplitData):
    """Windows (B, window, inputs) and flattened targets (B, horizon * targets), standardised."""

    def load(self) -> dict[str, Split]:
        task = self.task
        frame, time = read_frame(task)
        frame = ordered(frame, time)
        targets = columns(frame, "task.target", task.target or numeric(frame, time))
        features = [c for c in columns(frame, "task.features", task.features) if c not in targets]
        values = frame[targets + features].apply(pd.to_numeric).to_numpy(dtype=np.float64)  # (N, K + F)
        bounds = self.bounds(len(values))
        mean, std = values[: bounds[0]].mean(axis=0), values[: bounds[0]].std(axis=0) + 1e-8
        self.std = std[: len(targets)]
        self.encoding = {
            "columns": targets + features,  # inputs, in order; the first len(targets) are also the targets
            "targets": targets,
            "mean": mean.tolist(),
            "std": std.tolist(),
            "relative_to_last": True,  # target columns minus the window's last value, in standardised units
        }
        scaled = (values - mean) / std
        self.raw, self.starts = values[:, : len(targets)], {}
        out = {}
        for split, (low, high) in zip(("train", "val", "test"), self.ranges(len(values), bounds), strict=True):
            self.starts[split] = np.arange(low, high)
            out[split] = [self.window(scaled, t, len(targets)) for t in self.starts[split]]
        return out

    def bounds(self, n: int) -> tuple[int, int]:
        """Where the val and test segments start; every segment must hold at least one window."""
        w, h = self.task.window, self.task.horizon
        n_test, n_val = round(n * self.task.test_fraction), round(n * self.task.val_fraction)
        if n - n_val - n_test < w + h or n_val < h or n_test < h:
            need = w + h + 2 * h
            raise DataError(
                f"task.window={w}, task.horizon={h}: the series has {n} rows; train, val and test "
                f"(fractions {self.task.val_fraction}, {self.task.test_fraction}) need windows of {w} + {h} "
                f"steps and at least {need} rows in all; use a shorter window or horizon, or a longer series"
            )
        return n - n_val - n_test, n - n_test

    def ranges(self, n: int, bounds: tuple[int, int]) -> list[tuple[int, int]]:
        """Per split, the window starts t (targets t .. t + horizon - 1) whose targets lie in the split."""
        w, h, (val, test) = self.task.window, self.task.horizon, bounds
        return [(w, val - h + 1), (val, test - h + 1), (test, n - h + 1)]

    def window(self, scaled: np.ndarray, t: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs t - window .. t - 1 and targets t .. t + horizon - 1, targets relative to the last input."""
        x = scaled[t - self.task.window : t].copy()  # (window, K + F)
        anchor = x[-1, :k].copy()
        x[:, :k] -= anchor
        y = scaled[t : t + self.task.horizon, :k] - anchor  # (horizon, K)
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y.reshape(-1), dtype=torch.float32)

    def baseline(self) -> dict[str, float]:
        """RMSE and MAE of the seasonal-naive forecast, and of the naive one (the last value), on the val
        and test windows, in the targets' own units."""
        h, out = self.task.horizon, {}
        for name, season in (("seasonal_naive", self.task.season), ("naive", 1)):
            for split in ("val", "test"):
                starts = self.starts[split]
                if starts.min() - season < 0:
                    continue  # not a whole season of history before the first window
                truth = self.raw[starts[:, None] + np.arange(h)[None, :]]
                error = seasonal_naive(self.raw, starts, h, season) - truth  # (N, horizon, K)
                out[f"{name}_{split}_rmse"] = math.sqrt(float(np.mean(error**2)))
                out[f"{name}_{split}_mae"] = float(np.mean(np.abs(error)))
        return out

    def describe(self, splits: dict[str, Split]) -> TaskSpec:
        x, y = splits["train"][0]
        return TaskSpec(
            input_size=x.shape[1],
            num_outputs=len(y),
            loss="mse",
            metrics=("rmse", "mae"),
            scale=tuple(float(s) for s in np.tile(self.std, self.task.horizon)),
            baseline=self.baseline(),
            encoding=self.encoding,
        )
