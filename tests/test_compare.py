"""Comparing Pareto fronts across tracking stores, and the HTML report of a search.

The server test starts a real `mlflow server` on a PostgreSQL backend store (needs PostgreSQL at
127.0.0.1:5432: skipped without it, except under CI=true). The browser test renders the report in
headless Chromium (Debian's `chromium`, which .ci/run installs; skipped when no browser is found) and keeps
its screenshot in tests/artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import postgres
import pytest
from conftest import TINY
from matplotlib.image import imread
from mlflow.tracking import MlflowClient

from pipeline import cli, compare, tracking

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# Few, quick trials whose sparsity varies, so that the fronts have some shape.
SPACE = "{pruning.method: {choices: [magnitude, random]}, pruning.amount: {low: 0.3, high: 0.95}}"
N_LOCAL, N_REMOTE = 3, 4


@dataclass(frozen=True)
class Search:
    uri: str
    experiment: str
    parent: str  # the search's parent run id
    n_trials: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_search(uri: str, folder: Path, experiment: str, n_trials: int, *extra: str) -> Search:
    """`python -m pipeline search` (in this process) with its own Optuna journal in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    overrides = [
        *TINY,
        f"tracking.uri={uri}",
        f"tracking.experiment={experiment}",
        f"train.checkpoint_dir={folder / 'ck'}",
        f"search.n_trials={n_trials}",
        f"search.study={experiment}",
        f"search.space={SPACE}",
        *extra,
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)  # the default journal lies in the working directory
        mp.delenv("MLFLOW_RUN_ID", raising=False)
        assert cli.main(["search", *overrides]) == 0
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    (parent,) = client.search_runs([experiment_id], "tags.`pipeline.command` = 'search'")
    return Search(uri, experiment, parent.info.run_id, n_trials)


def runs(search: Search, role: str) -> list:
    client = MlflowClient(search.uri)
    experiment_id = client.get_experiment_by_name(search.experiment).experiment_id
    return client.search_runs([experiment_id], f"tags.`pipeline.role` = '{role}' and status = 'FINISHED'")


def pairs(table: pd.DataFrame) -> list[tuple[float, float]]:
    return list(zip(table["sparsity"], table["val_quality"], strict=True))


def non_dominated(points: list[tuple[float, float]]) -> list[bool]:
    """Brute force, both objectives larger-is-better."""
    return [not any(b[0] >= a[0] and b[1] >= a[1] and b != a for b in points) for a in points]


def staircase(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by a front above the reference: vertical strips, sparsest point last."""
    area, left = 0.0, reference[0]
    for s, q in sorted(p for p, keep in zip(points, non_dominated(points), strict=True) if keep):
        area += (s - left) * (q - reference[1])  # the strip from the previous sparsity to this one
        left = s
    return area


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Search:
    """A tiny search on a sqlite store."""
    folder = tmp_path_factory.mktemp("local")
    return tiny_search(f"sqlite:///{folder / 'mlflow.db'}", folder, "speech-lstm", N_LOCAL)


@pytest.fixture
def server(tmp_path: Path):
    """A real `mlflow server` on a fresh PostgreSQL database, on a free loopback port; dropped afterwards."""
    with postgres.databases("server") as (store,):
        yield from _serve(store, tmp_path)


def _serve(store: str, tmp_path: Path):
    """`mlflow server` on the backend store `store` until the test ends; yields its URL."""
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", store,
        "--artifacts-destination", str(tmp_path / "server-artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no background job runner on 2 cores
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(url, process, tmp_path / "server.log")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the server and its workers
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def wait_for_health(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + 90
    while time.time() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mlflow server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"mlflow server not healthy after 90 s: {log.read_text()[-2000:]}")


def test_compare_a_tracking_server_and_a_sqlite_file_in_one_command(server, local, tmp_path, capsys) -> None:
    remote = tiny_search(server, tmp_path / "remote", "speech-gru", N_REMOTE, "model.cell=gru")
    sources = {f"{server}#speech-gru": remote, f"{local.uri}#{local.parent}": local}  # experiment; parent run
    out, log_uri = tmp_path / "cmp", f"sqlite:///{tmp_path / 'log.db'}"
    capsys.readouterr()
    assert cli.main(["compare", *sources, "--out", str(out), "--log-to", log_uri]) == 0
    printed = capsys.readouterr().out
    print(printed)  # the summary: shown with -s, or when the test fails

    table, summary = pd.read_csv(out / "compare.csv"), pd.read_csv(out / "hypervolume.csv")
    for source, search in sources.items():
        assert f"read {search.n_trials} trials from {source}" in printed
        expected = {r.info.run_id for r in runs(search, "trial")}
        assert len(expected) == search.n_trials
        assert sorted(table.loc[table["source"] == source, "run_id"]) == sorted(expected)
    assert len(table) == N_LOCAL + N_REMOTE and set(table["metric"]) == {"accuracy"}
    assert set(table.loc[table["source"] == f"{server}#speech-gru", "model.cell"]) == {"gru"}

    assert table["pareto_combined"].tolist() == non_dominated(pairs(table))  # accuracy: larger is better
    for source in sources:
        mine = table[table["source"] == source]
        assert mine["pareto_source"].tolist() == non_dominated(pairs(mine))

    # One reference for both: the worst validation accuracy of every trial and dense run, 1% of the range lower.
    qualities = [r.data.metrics["val_accuracy"] for s in sources.values() for role in ("trial", "dense")
                 for r in runs(s, role)]  # fmt: skip
    worst = min(qualities) - 0.01 * (max(qualities) - min(qualities))
    assert summary["reference_quality"].tolist() == pytest.approx([worst, worst])
    assert summary["reference_sparsity"].tolist() == [0.0, 0.0]
    assert list(summary["source"]) == list(sources) and (summary["hypervolume"] > 0).all()
    for source in sources:
        mine = table[table["source"] == source]
        volume = summary.loc[summary["source"] == source, "hypervolume"].item()
        assert volume == pytest.approx(staircase(pairs(mine), (0.0, worst)))
    assert (out / "fronts.png").stat().st_size > 10_000

    client = MlflowClient(log_uri)
    (logged,) = client.search_runs([client.get_experiment_by_name("compare").experiment_id])
    assert logged.info.status == "FINISHED"
    files = {a.path for a in client.list_artifacts(logged.info.run_id)}
    assert files == {"compare.csv", "hypervolume.csv", "fronts.png"}
    volumes = {k: v for k, v in logged.data.metrics.items() if k.startswith("hypervolume/")}
    assert sorted(volumes.values()) == pytest.approx(sorted(summary["hypervolume"]))
    assert f"hypervolume/http_127.0.0.1_{server.rsplit(':', 1)[1]}_speech-gru" in volumes
    assert float(logged.data.params["reference.accuracy.quality"]) == pytest.approx(worst)


def test_unreadable_sources_are_named_and_skipped(local, tmp_path, capsys) -> None:
    broken = f"sqlite:///{tmp_path / 'broken.db'}"
    with tracking.open_run(broken, "no-metrics", {}, tags={"pipeline.role": "trial"}):
        pass  # a FINISHED trial run without the contract metrics
    good = f"{local.uri}#speech-lstm"
    bad = {
        f"http://127.0.0.1:{free_port()}#speech-lstm": "the tracking store does not answer",
        f"{local.uri}#no-such-experiment": "no experiment or parent run named 'no-such-experiment'",
        f"{broken}#no-metrics": "lacks the contract metrics",
        f"sqlite:///{tmp_path / 'missing.db'}#x": "no such sqlite file",
    }
    started = time.time()
    assert cli.main(["compare", *bad, good, "--out", str(tmp_path / "cmp")]) == 0
    assert time.time() - started < 30  # a closed port fails at once: no retries with backoff
    captured = capsys.readouterr()
    for source, reason in bad.items():
        assert f"warning: {source}: " in captured.err and reason in captured.err
    assert f"read {N_LOCAL} trials from {good}" in captured.out
    assert set(pd.read_csv(tmp_path / "cmp" / "compare.csv")["source"]) == {good}
    assert not (tmp_path / "missing.db").exists()  # reading never creates a store

    assert cli.main(["compare", *bad, "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        line for line in err.splitlines() if not line.startswith("warning:")
    ]
    assert err.count("error: ") == 1 and not (tmp_path / "none").exists()
    assert cli.main(["compare", good, "sqlite:///no/hash.db"]) == 2  # malformed: nothing is read
    assert capsys.readouterr().err.startswith("error: source 'sqlite:///no/hash.db': expected URI#NAME")
    down = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["compare", good, "--log-to", down, "--out", str(tmp_path / "unlogged")]) == 2
    refused = f"error: --log-to {down}: the tracking store does not answer (Connection refused)\n"
    assert capsys.readouterr().err == refused
    assert not (tmp_path / "unlogged").exists()  # checked before any work


def test_sources_with_different_metrics_never_share_a_front() -> None:
    rows = [  # (source, metric, sparsity, val_quality): accuracy up, rmse down
        ("a", "accuracy", 0.5, 0.9), ("a", "accuracy", 0.8, 0.7), ("b", "accuracy", 0.6, 0.95),
        ("b", "rmse", 0.9, 0.3), ("b", "rmse", 0.5, 0.2), ("b", "rmse", 0.4, 0.25),
    ]  # fmt: skip
    table = pd.DataFrame(rows, columns=["source", "metric", "sparsity", "val_quality"])
    for column in ["run_id", "trial", *compare.RECIPE, *compare.MEASURES[2:]]:
        table[column] = None
    table = compare.fronts(table)
    assert table["pareto_combined"].tolist() == [False, True, True, True, True, False]
    assert table["pareto_source"].tolist() == [True, True, True, True, True, False]
    refs = compare.references(table, table[:0])
    assert refs == {"accuracy": (0.0, pytest.approx(0.7 - 0.0025)), "rmse": (0.0, pytest.approx(0.3 + 0.001))}
    summary = compare.hypervolumes(table, refs).set_index(["source", "metric"])["hypervolume"]
    assert summary[("b", "rmse")] == pytest.approx(staircase([(s, -q) for *_, s, q in rows[3:]], (0.0, -0.301)))
    assert summary[("a", "accuracy")] == pytest.approx(staircase([(0.5, 0.9), (0.8, 0.7)], (0.0, 0.6975)))
    assert compare.references(table, table[:0], (0.1, 0.5)) == {"accuracy": (0.1, 0.5), "rmse": (0.1, 0.5)}


def test_the_mlproject_string_is_split_into_sources_and_flags() -> None:
    words = cli._words("'sqlite:////a b/mlflow.db#x' http://h:5000#y --out out --reference 0,0.5")
    assert words == ["sqlite:////a b/mlflow.db#x", "http://h:5000#y", "--out", "out", "--reference", "0,0.5"]
    assert cli._words("sqlite:////a b/mlflow.db#x") == ["sqlite:////a b/mlflow.db#x"]  # one path with a space


@pytest.fixture(scope="module")
def page(local: Search, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the local search, written by the CLI."""
    out = tmp_path_factory.mktemp("report")
    assert cli.main(["report", f"{local.uri}#{local.parent}", "--out", str(out)]) == 0
    return out / "index.html"


def test_the_report_is_one_offline_page_with_its_images(page: Path, local: Search) -> None:
    text = page.read_text()
    assert "<script" not in text and not re.search(r"(src|href)=\"?[a-z]+://", text)
    images = re.findall(r'<img src="([^"]+)"', text)
    assert all((page.parent / image).is_file() and "/" not in image for image in images)
    fronts = [r for r in runs(local, "trial") if r.data.tags["pareto"] == "true"]
    assert "front_accuracy.png" in images
    assert len([i for i in images if i.startswith("curves_")]) == local.n_trials
    gates = sorted(i for i in images if i.startswith("gates_"))
    assert gates == sorted(f"gates_{r.info.run_id[:12]}.png" for r in fronts)
    assert all(r.info.run_id in text for r in runs(local, "trial"))


def browser() -> str | None:
    return next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


def chromium(page: Path, tmp_path: Path, *flags: str) -> str:
    found = browser()
    command = [found, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000", *flags, page.as_uri()]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_report_renders_in_headless_chromium(page: Path, local: Search, tmp_path: Path) -> None:
    if browser() is None:
        pytest.skip("no chromium binary found (Debian: apt-get install chromium; .ci/run installs it)")
    dom = chromium(page, tmp_path, "--dump-dom")
    cells = re.findall(r"<td>([0-9a-f]{32})</td>", dom)
    assert sorted(cells) == sorted(r.info.run_id for r in runs(local, "trial"))  # the table rendered, every row

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    chromium(page, tmp_path, f"--screenshot={shot}")
    # The same page without the front image: the screenshots must differ over most of the image's area.
    front = page.parent / "front_accuracy.png"
    width, height = imread(front).shape[1::-1]
    front.rename(tmp_path / "front.png")
    try:
        chromium(page, tmp_path, f"--screenshot={tmp_path / 'without.png'}")
    finally:
        (tmp_path / "front.png").rename(front)
    rendered, missing = imread(shot)[..., :3], imread(tmp_path / "without.png")[..., :3]
    changed = (np.abs(rendered - missing).sum(axis=2) > 0.05).sum()
    assert changed > 0.5 * width * height, f"the front image did not render: {changed} pixels changed"
    print(f"report screenshot: {shot}")
