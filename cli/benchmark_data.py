"""``gnn-service benchmark cmapss|skab|hydraulic``: the real-data benchmarks (they need the
[train] extra); mounted on the ``benchmark`` group by :mod:`cli.benchmark`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.errors import require_extra
from cli.progress import stage_bars


def cmapss(
    train: Annotated[
        Path, typer.Option(help="C-MAPSS training file (train_FD001.txt), run to failure.")
    ],
    test: Annotated[
        Path | None,
        typer.Option(help="Test file (test_FD001.txt); with --rul, the standard protocol."),
    ] = None,
    rul: Annotated[
        Path | None, typer.Option(help="True RUL of each test unit (RUL_FD001.txt).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Result file.")] = Path(
        "benchmarks/results/cmapss.json"
    ),
    plot: Annotated[Path, typer.Option(help="Predicted against true RUL (PNG).")] = Path(
        "docs/img/cmapss_rul.png"
    ),
    seed: Annotated[int, typer.Option(help="Seed of split, cuts, weights and baseline.")] = 0,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Training epochs, a fixed count (default 50).")
    ] = None,
) -> None:
    """Remaining useful life on NASA C-MAPSS FD001: the GNN against a tree ensemble."""
    require_extra("benchmark cmapss")
    from training.benchmarks.cmapss.run import CmapssBenchConfig, run_cmapss_benchmark
    from training.benchmarks.report import command_line, write_result

    if (test is None) != (rul is None):
        raise typer.BadParameter("give --test and --rul together, or neither", param_hint="--rul")
    with stage_bars("steps", width=10) as (tick, progress):
        try:
            result = run_cmapss_benchmark(
                CmapssBenchConfig(seed=seed)
                if epochs is None
                else CmapssBenchConfig(seed=seed, epochs=epochs),
                train_path=train,
                test_path=test,
                rul_path=rul,
                command=command_line(),
                plot_path=plot,
                tick=tick,
            )
        except ValueError as exc:
            progress.stop()
            raise typer.BadParameter(str(exc)) from None
    write_result(out, result)
    evaluation = result["config"]["evaluation"]
    table = Table(
        title=f"cmapss FD001: {result['config']['evaluated_units']} {evaluation} engines "
        f"({os.cpu_count()} CPUs)",
        caption="RMSE and score at one cut per engine; RMSE over every possible cut and "
        "every window. * published FD001 test-set RMSE, not measured here",
    )
    table.add_column("model", no_wrap=True)
    for column in ("RMSE", "score", "RMSE cuts", "RMSE windows", "train s"):
        table.add_column(column, justify="right")
    for name, metrics in {**result["results"], **result["baselines"]}.items():
        table.add_row(
            name,
            *(
                f"{metrics[f'{evaluation}_{metric}']:.2f}"
                for metric in ("rmse", "score", "rmse_all_cuts", "rmse_all_windows")
            ),
            f"{metrics['training_s']:.1f}",
        )
    for name, metrics in result["published"].items():
        table.add_row(f"{name} *", f"{metrics['test_rmse']:.2f}", "", "", "", "")
    Console().print(table)
    typer.echo(f"plot {plot}")
    typer.echo(f"wrote {out}")


def skab(
    data_dir: Annotated[
        Path, typer.Option(help="SKAB directory (valve1/, valve2/, other/, anomaly-free/).")
    ],
    train_rows: Annotated[
        int, typer.Option(min=1, help="Training prefix of each file; the rest is test.")
    ] = 400,
    out: Annotated[Path, typer.Option(help="Result file.")] = Path("benchmarks/results/skab.json"),
    seed: Annotated[int, typer.Option(help="Seed of weights, shuffling and augmentation.")] = 0,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Training epochs, a fixed count (default 12).")
    ] = None,
    plot: Annotated[Path, typer.Option(help="Scores against labels (PNG).")] = Path(
        "docs/img/skab_scores.png"
    ),
    checkpoint: Annotated[Path, typer.Option(help="Where to save the trained model.")] = Path(
        ".gnn-data/skab/skab.gnnckpt"
    ),
    spec_out: Annotated[
        Path, typer.Option(help="The rig's spec, calibrated on anomaly-free.csv (YAML).")
    ] = Path("training/benchmarks/skab/specs/skab_pump_rig.yaml"),
) -> None:
    """Point-wise anomaly detection on SKAB: the GNN against PCA T²+Q and published results."""
    require_extra("benchmark skab")
    from dataclasses import replace

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from training.benchmarks.report import command_line, write_result
    from training.benchmarks.skab.dataset import spec_yaml
    from training.benchmarks.skab.report import plot_scores, result, save_model, serving_spec
    from training.benchmarks.skab.run import PLOTTED, SkabBenchConfig, run_skab_benchmark

    config = SkabBenchConfig(train_rows=train_rows, seed=seed)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    console = Console(stderr=True)
    bars: dict[int, TaskID] = {}
    with Progress(
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps, loss {task.fields[loss]:.4f}"),
        console=console,
    ) as progress:

        def tick(epoch: int, total: int, step: int, steps: int, loss: float) -> None:
            if epoch not in bars:
                bars[epoch] = progress.add_task(f"epoch {epoch}/{total}", total=steps, loss=0.0)
            progress.update(bars[epoch], completed=step, loss=loss)

        try:
            run = run_skab_benchmark(config, data_dir, tick=tick, say=progress.console.log)
            spec = serving_spec(data_dir)
        except ValueError as exc:
            progress.stop()
            raise typer.BadParameter(str(exc), param_hint="--data-dir") from None
    document = result(run, command=command_line(), data_dir=data_dir)
    write_result(out, document)
    sha256 = save_model(run, checkpoint, spec)
    spec_out.parent.mkdir(parents=True, exist_ok=True)
    spec_out.write_text(spec_yaml(spec), encoding="utf-8")
    plot_scores(run, plot, PLOTTED)

    table = Table(
        title=f"skab: {document['results']['gnn']['test_rows']} test rows, "
        f"first {train_rows} rows of each file train ({os.cpu_count()} CPUs)"
    )
    for column in ("detector", "F1", "FAR %", "MAR %", "training s"):
        table.add_column(column, justify="left" if column == "detector" else "right")

    def cell(metrics: dict[str, float], key: str, digits: int) -> str:
        return f"{metrics[key]:.{digits}f}" if key in metrics else ""

    rows = {
        **{f"{name} (this run)": metrics for name, metrics in document["results"].items()},
        **{f"{name} (this run)": metrics for name, metrics in document["baselines"].items()},
        **{f"{name} (published)": metrics for name, metrics in document["published"].items()},
    }
    for name, metrics in rows.items():
        table.add_row(
            name,
            cell(metrics, "f1", 3),
            cell(metrics, "far_pct", 2),
            cell(metrics, "mar_pct", 2),
            cell(metrics, "training_s", 1),
        )
    Console().print(table)
    typer.echo(f"checkpoint {checkpoint} (sha256 {sha256[:12]})")
    typer.echo(f"spec {spec_out}")
    typer.echo(f"plot {plot}")
    typer.echo(f"wrote {out}")


def hydraulic(
    data_dir: Annotated[
        Path, typer.Option(help="UCI hydraulic 1 Hz directory (TS1-4, VS1, CE, CP, SE, profile).")
    ],
    folds: Annotated[int, typer.Option(min=2, help="Folds of each split scheme.")] = 5,
    out: Annotated[Path, typer.Option(help="Result file.")] = Path(
        "benchmarks/results/hydraulic.json"
    ),
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of folds and forests, and of weights and shuffling unless --train-seed."
        ),
    ] = 0,
    train_seed: Annotated[
        int | None,
        typer.Option(
            help="Seed of the GNN's weights, shuffling and dropout only (default: --seed); "
            "folds and forests keep --seed, so the runs measure the GNN's seed spread."
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Training epochs per fold, a fixed count (default 84)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=10, help="Use only the first N cycles (quick runs).")
    ] = None,
    plot: Annotated[Path, typer.Option(help="Per-target accuracy chart (PNG).")] = Path(
        "docs/img/hydraulic_accuracy.png"
    ),
) -> None:
    """Condition classification on the UCI hydraulic rig: the GNN against a random forest,
    grouped (headline) and random k-fold splits."""
    require_extra("benchmark hydraulic")
    from dataclasses import replace

    from training.benchmarks.hydraulic.dataset import TARGETS, load_hydraulic
    from training.benchmarks.hydraulic.report import plot_accuracy
    from training.benchmarks.hydraulic.run import (
        BASELINE,
        HydraulicBenchConfig,
        run_hydraulic_benchmark,
    )
    from training.benchmarks.report import command_line, write_result

    config = HydraulicBenchConfig(folds=folds, seed=seed, train_seed=train_seed)
    if epochs is not None:
        config = replace(config, epochs=epochs)
    try:
        data = load_hydraulic(data_dir, limit=limit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--data-dir") from None
    with stage_bars("epochs", width=18) as (tick, progress):
        try:
            document = run_hydraulic_benchmark(data, config, command=command_line(), tick=tick)
        except ValueError as exc:
            progress.stop()
            raise typer.BadParameter(str(exc)) from None
    write_result(out, document)
    plot_accuracy(document, plot)

    published = document["published"]["helwig2015_17_sensors"]
    for metric, title in (("accuracy", "accuracy"), ("macro_f1", "macro-F1")):
        table = Table(
            title=f"hydraulic {title}, {data.num_cycles} cycles, {folds}-fold, mean±std "
            f"({os.cpu_count()} CPUs)"
        )
        table.add_column("target")
        for scheme in config.schemes:
            table.add_column(f"{scheme} GNN", justify="right")
            table.add_column(f"{scheme} forest", justify="right")
        if metric == "accuracy":
            table.add_column("published", justify="right")
        for target in TARGETS:
            key = f"{target.name}_{metric}"
            cells = [target.name]
            for scheme in config.schemes:
                for scores in (
                    document["results"][f"gnn_{scheme}"],
                    document["baselines"][f"{BASELINE}_{scheme}"],
                ):
                    cells.append(f"{scores[key]:.3f}±{scores[f'{key}_std']:.2f}")
            if metric == "accuracy":
                cells.append(f"{published[key]:.3f}" if key in published else "")
            table.add_row(*cells)
        Console().print(table)
    seconds = {s: document["results"][f"gnn_{s}"]["training_s"] for s in config.schemes}
    typer.echo(
        "GNN training_s: "
        + ", ".join(f"{s} {v:.1f}" for s, v in seconds.items())
        + f" (total {sum(seconds.values()):.1f})"
    )
    typer.echo(f"plot {plot}")
    typer.echo(f"wrote {out}")


def adapt(
    dataset: Annotated[str, typer.Argument(help="Data set: hydraulic, skab or cmapss.")],
    data_dir: Annotated[Path, typer.Option(help="The data set's directory.")],
    out: Annotated[Path, typer.Option(help="Folder for the spec, recordings and labels.")],
    seed: Annotated[int, typer.Option(help="Seed of the held-out test fold.")] = 0,
    fold: Annotated[
        int,
        typer.Option(
            min=0, max=4, help="hydraulic: which of the five grouped folds is held out as test."
        ),
    ] = 0,
) -> None:
    """Write a real data set as a user's machine (spec, recordings, labels table), for the
    product path: import, train and evaluate then run as for any machine (docs/benchmarks.md)."""
    require_extra("benchmark adapt")
    if fold and dataset != "hydraulic":
        raise typer.BadParameter(
            f"{dataset} has one test split (its seed chooses it): --fold is for hydraulic",
            param_hint="--fold",
        )
    if dataset not in ("hydraulic", "skab", "cmapss"):
        raise typer.BadParameter(
            f"unknown data set {dataset!r}: hydraulic, skab or cmapss", param_hint="DATASET"
        )
    try:
        if dataset == "hydraulic":
            from training.benchmarks.hydraulic.adapter import adapt_hydraulic
            from training.benchmarks.hydraulic.dataset import load_hydraulic

            files = adapt_hydraulic(load_hydraulic(data_dir), out, seed=seed, test_fold=fold)
        elif dataset == "skab":
            from training.benchmarks.skab.adapter import adapt_skab

            files = adapt_skab(data_dir, out, seed=seed)
        else:
            from training.benchmarks.cmapss.adapter import adapt_cmapss

            files = adapt_cmapss(data_dir, out, seed=seed)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--data-dir") from None
    console = Console()
    console.print(
        f"wrote {files.spec}, {files.labels}, {files.train} ({files.train_runs} runs) and "
        f"{files.test} ({files.test_runs} runs, grouped fold {fold} of seed {seed})"
    )
