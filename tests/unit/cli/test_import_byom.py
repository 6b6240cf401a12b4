"""docs/byom.md, run as written: every ``$ gnn-service`` line of its console blocks, in order,
on the real SKAB files (../shared/data/skab), from a folder where ``docs`` and
``../shared`` resolve as they do from the repository root.

The commands go through an app mounted as ``cli.main`` mounts them (``import`` with
``app.command("import")(import_runs)``), under settings with a temporary data directory.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import typer
from doc_commands import ROOT, SKAB, doc_commands, doc_workdir
from typer.testing import CliRunner, Result

from cli.demo import demo_app
from cli.importing import import_runs
from cli.machines import machines_app
from cli.models import models_app
from cli.train import evaluate, train
from service.settings import Settings

DOC = ROOT / "docs" / "byom.md"

needs_skab = pytest.mark.skipif(
    not SKAB.is_dir(), reason=f"SKAB data not present at {SKAB} (see ../shared/data/README.md)"
)


def _app(data_dir: Path) -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)

    @app.callback()
    def root(ctx: typer.Context) -> None:
        ctx.obj = Settings(data_dir=data_dir)

    app.add_typer(demo_app, name="demo")
    app.command("import")(import_runs)
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.add_typer(models_app, name="models")
    app.add_typer(machines_app, name="machines")
    return app


def _doc_commands() -> list[tuple[list[str], list[str]]]:
    """The doc's commands but ``run``, which starts workers (tests/integration runs it)."""
    return [(args, shown) for args, shown in doc_commands(DOC) if args[0] != "run"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return doc_workdir(tmp_path_factory.mktemp("byom"))


def _run(workdir: Path, args: list[str], monkeypatch: pytest.MonkeyPatch) -> Result:
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("COLUMNS", "80")  # the width the doc's tables were printed at
    result = CliRunner().invoke(_app(workdir.parent / "data"), args)
    assert result.exit_code == 0, f"gnn-service {shlex.join(args)}\n{result.output}"
    return result


def test_the_doc_runs_validate_import_train_evaluate_register_serve_in_that_order() -> None:
    verbs = [
        " ".join(args[:2]) if args[0] in {"demo", "models", "machines"} else args[0]
        for args, _ in doc_commands(DOC)
    ]
    assert verbs == [
        "demo validate",
        "import",
        "train",
        "evaluate",
        "models register",
        "models list",
        "machines register",
        "models activate",
        "machines list",
        "run",
    ]


@needs_skab
def test_byom_validate_and_import_print_what_the_doc_shows(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = _doc_commands()
    for args, shown in commands[:2]:
        result = _run(workdir, args, monkeypatch)
        printed = result.stdout.splitlines()
        for line in shown:
            if line.strip() and line.strip() != "...":
                assert line in printed, f"{line!r} not printed by gnn-service {args[0]}"

    report = json.loads((workdir / "runs" / "import-report.json").read_text())
    runs = {run["run"]: run for run in report["runs"]}
    assert list(runs) == [
        "valve1-0",
        "valve1-1",
        "valve1-2",
        "valve2-0",
        "valve2-1",
        "anomaly-free-anomaly-free",
    ]
    assert runs["valve1-2"]["labels"]["rows"][0]["start_s"] == 666.0
    assert runs["valve1-2"]["labels"]["unknown_health_steps"] == 354
    assert runs["anomaly-free-anomaly-free"]["labels"]["healthy_reference"]
    ignored = {name: run["ignored_columns"] for name, run in runs.items()}
    assert ignored.pop("anomaly-free-anomaly-free") == []  # that file has no label columns
    assert set(map(tuple, ignored.values())) == {("anomaly", "changepoint")}
    assert {run["missing_sensors"] == [] for run in runs.values()} == {True}
    assert max(sensor["longest_gap_s"] for sensor in runs["valve1-2"]["sensors"]) == 75.0


@needs_skab
def test_byom_train_evaluate_and_register_run_as_written(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (workdir / "runs" / "import-report.json").exists():
        for args, _ in _doc_commands()[:2]:
            _run(workdir, args, monkeypatch)
    results = [_run(workdir, args, monkeypatch) for args, _ in _doc_commands()[2:]]

    assert (workdir / "models" / "skab.gnnckpt").is_file()
    assert re.search(r"skab 1 on \d+ windows", results[1].stdout)  # evaluate's table title
    assert "registered skab 1 (staged), serving skab-pump-rig" in results[2].stdout
    assert "skab" in results[3].stdout
    assert "registered skab-pump-rig version 1" in results[4].stdout
    assert "activated skab 1: serves skab-pump-rig" in results[5].stdout
    assert re.search(r"skab-pump-rig .* skab ", results[6].stdout)  # machines list's row
