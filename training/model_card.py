"""The model card (docs/models.md) rendered from a build report of :mod:`training.build_models`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_COLUMNS = (
    ("fault_macro_f1", "fault macro-F1", 3),
    ("health_mae", "health MAE", 3),
    ("health_mae_faulty", "health MAE (faulty)", 3),
    ("rul_mae_hours", "RUL MAE h (faulty)", 0),
    ("rul_mae_hours_developed", "RUL MAE h (developed)", 0),
    ("anomaly_auroc", "anomaly AUROC", 3),
    ("anomaly_auroc_developed", "AUROC (developed)", 3),
    ("anomaly_auroc_range_baseline", "AUROC range baseline", 3),
)


_FORMAT = (
    "## Checkpoints and the registry",
    "",
    "A checkpoint (`.gnnckpt`, `worker/model/loader.py`) is one file: the magic bytes",
    "`GNNCKPT\\0`, the manifest's length (8 bytes, little-endian) and SHA-256 (32 bytes), the",
    "manifest (UTF-8 JSON: format and version, name, version, created_at, library versions,",
    "model config, feature contract with the residual scales and any input quantiles,",
    "machines and their fault vocabularies, training data, metrics, and the weights' size and",
    "SHA-256), then the",
    "weights (`torch.save` of the state dict, read with `torch.load(weights_only=True)`).",
    "A truncated, corrupt, tampered or incompatible file is refused with a `CheckpointError`",
    "that names the problem.",
    "",
    "```console",
    "$ gnn-service train --system excavator --generate 48h --out out/",
    "$ gnn-service evaluate out/universal.gnnckpt --system excavator --generate 12h --seed 9",
    "$ gnn-service models register out/universal.gnnckpt --version 1.1.0",
    "$ gnn-service models activate universal 1.1.0   # workers switch between batches",
    "$ gnn-service models rollback universal         # back to the previous active version",
    "$ gnn-service models list",
    "```",
    "",
    "The registry lives in the service database (tables `model_versions`, which holds each",
    "checkpoint's bytes and the machines it serves, and `model_activations`, the activation",
    "history that `rollback` walks back), so every worker on every host sees the same active",
    "versions. Workers read the registry between batches (every",
    "`GNN_MODEL__REGISTRY_CHECK_INTERVAL_S`, and at once when `models activate` broadcasts),",
    "write a checkpoint to `<data_dir>/model-cache/`, load and warm it, and switch between",
    "batches. With no active version of a name a worker serves its bundled checkpoint.",
    "",
    "## Many machines, many models: routing",
    "",
    "One worker pool serves several models. Every active model version declares the machines it",
    "serves: names, or shell-style patterns (`press_line_*`), given with `models register",
    "--serves` (repeatable) and by default the machines it was trained on. A snapshot goes to the",
    "active model that serves its machine (an exact name before a pattern, a longer pattern",
    "before a shorter one); every other machine goes to the fallback model, `GNN_MODEL__NAME`",
    "(`universal`: the bundled model unless a version of it is active).",
    "",
    "```console",
    "$ gnn-service machines register press_line_3.yaml",
    "$ gnn-service models register press.gnnckpt --version 1.0.0 --serves press_line_3",
    "$ gnn-service models activate press 1.0.0        # serves press_line_3",
    "$ gnn-service machines list                      # each machine and the model serving it",
    "$ gnn-service models deactivate press            # press_line_3 back to the fallback",
    "```",
    "",
    "`models activate` first checks what a worker would meet, and refuses with one line when the",
    "version would serve no machine in service (none of its machines registered, or all",
    "retired), when another active model already serves one of its machines (deactivate that one",
    "first), or when it fails on its machines as a worker runs it (load, encode a window of each",
    "machine, forward with finite outputs). A version of the fallback model is tried on the demo",
    "machines.",
    "",
    "In a worker, the fallback model is loaded and warmed before consuming; a routed model is",
    "loaded and warmed (on windows of the machines it serves) the first time a micro-batch holds",
    "one of its machines, and kept in a least-recently-used cache of at most",
    "`GNN_MODEL__CACHE_MAX_MB` of weights (512). A micro-batch is cut into one forward per model;",
    "the batching limits (`GNN_BATCHING__*`) bound the whole micro-batch, so each model's forward",
    "is within them. When a model is activated, rolled back or deactivated, each worker re-reads",
    "the routes between batches and loads the new version of each model it holds before that",
    "model's next batch; a version that cannot be loaded on a worker is logged, counted in",
    "`gnn_model_swap_failures_total`, and the old one kept (a routed model with no old version",
    "fails its snapshots, which are requeued and, after `GNN_MODEL__MAX_FAILURES_PER_SNAPSHOT`,",
    "dead-lettered `model_failed`). Each diagnosis records the model (`model_version`,",
    "`name:version`) and the machine's spec version (`spec_version`). Per model, workers export",
    "`gnn_model_snapshots_total`, `gnn_model_batch_snapshots`, `gnn_model_forward_seconds` and",
    "`gnn_model_failures_total` (label `model`: the name; at most 16 names, the rest `other`),",
    'drawn in Grafana\'s "Per model" panel.',
    "",
)


def _number(value: Any, digits: int) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(rows: Sequence[tuple[str, Mapping[str, Any]]], first: str) -> list[str]:
    header = [first, *(title for _, title, _ in _COLUMNS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, metrics in rows:
        cells = [_number(metrics.get(key), digits) for key, _, digits in _COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def render_model_card(report: Mapping[str, Any]) -> str:
    """Markdown model card of one build report."""
    test, timings = report["test"], report["timings_s"]
    plan, config = report["data_plan"], report["train_config"]
    libraries = report["machine"]["libraries"]
    per_system = sorted(test["per_system"].items())
    lines = [
        "# Models",
        "",
        "Generated by `python -m cli.build models`; do not edit by hand. Every number",
        "below was measured by that command on the machine and at the time stated here.",
        "",
        f"## {report['name']} {report['version']}",
        "",
        "One universal temporal graph neural network (`UniversalTemporalGNN`) for all four demo",
        "machines, shipped as `worker/model/bundled/"
        f"{report['name']}.gnnckpt` and served when the model registry has no active version.",
        "",
        f"- Parameters: {report['parameters']:,}; checkpoint {report['size_bytes'] / 1024:.0f} KiB,"
        f" weights SHA-256 `{report['sha256']}`.",
        f"- Created {report['created_at']} with torch {libraries.get('torch')}, torch_geometric "
        f"{libraries.get('torch_geometric')}, gnn-service {libraries.get('gnn-service')}.",
        f"- Architecture: `{report['model_config']}`.",
        "",
        "### Data",
        "",
        f"Simulated by `machines` for {', '.join(report['systems'])}. Per machine: "
        f"{plan['hours']:g} h of training runs (seed {plan['seed']}), {plan['val_hours']:g} h of "
        f"validation runs (seed {plan['val_seed']}), {plan['test_hours']:g} h of test runs "
        f"(seed {plan['test_seed']}, used for nothing but the table below). Runs are at most "
        f"{plan['max_run_hours']:g} h long; each cycle of runs injects every fault mode of the "
        "machine once (random onset 5-50 % into the run, progression step 20 % / linear 40 % /"
        " exponential 40 %, severity 0.5-1, time to failure 0.4-1.6 times the rest of the run)"
        " and leaves one run healthy.",
        f"Windows of 60 s are cut every {plan['stride_s']:g} s for training and every "
        f"{plan['eval_stride_s']:g} s for validation and test: {report['train_windows']} "
        f"training, {report['val_windows']} validation, {report['test_windows']} test windows."
        " Each window is labelled at its last step.",
        "",
        "### Training",
        "",
        f"AdamW (learning rate {config['learning_rate']:g}, cosine decay, weight decay "
        f"{config['weight_decay']:g}), batches of {config['batch_size']}, at most "
        f"{config['epochs']} epochs with early stopping (patience {config['patience']}) on the "
        f"validation loss; {report['epochs_run']} epochs run, best epoch "
        f"{report['best_epoch']} kept (stopped by {report['stop_reason']}). Fault and "
        f"remaining-life terms weigh faulty components {config['loss']['faulty_weight']:g}x; "
        f"component types hidden at rate {config['type_dropout']:g}; forecasting learns from "
        f"unaffected sensors only, and on {config['corrupted_fraction']:.0%} of the steps from "
        "inputs whose level was shifted at rate "
        f"{config['level_corruption']:g} (so the forecaster learns the level a sensor's "
        "neighbours imply). Residual scales per sensor kind were fitted afterwards on healthy "
        "training windows.",
        "",
        f"Time on {report['machine']['threads']} CPU threads ({report['machine']['processor']}): "
        f"data {timings['data']:.0f} s, training {timings['training']:.0f} s, test evaluation "
        f"{timings['test_evaluation']:.0f} s, universality experiment "
        f"{timings['universality']:.0f} s; whole build {timings['total']:.0f} s.",
        "",
        f"### Quality on unseen data (seed {plan['test_seed']})",
        "",
        *_table([*per_system, ("all machines", test["overall"])], "machine"),
        "",
        "The same model on other unseen seeds (all machines pooled), to show how much one",
        "seed's numbers vary:",
        "",
        *_table(
            [(f"seed {seed}", metrics) for seed, metrics in report["seed_spread"].items()], "test"
        ),
        "",
        "- fault macro-F1: each component's most probable candidate (`normal` or one of its",
        "  fault modes) against the active fault; mean F1 over classes in truth or prediction",
        "  (pooled over machines, every machine's fault classes count separately).",
        "- health MAE: over all components, and over components with an active fault.",
        "- RUL MAE: hours, over components with an active fault (and over those whose fault is",
        "  developed, health <= 0.6), both sides capped at 1000 h.",
        "- anomaly AUROC: sensor anomaly score against 'an active fault affects this sensor'",
        "  (developed: only faults with effect >= 0.5 as positives); the range baseline ranks",
        "  sensors by how far outside their normal range they went in the window.",
        "",
        *_alarms(report.get("calibration"), report.get("alarms")),
        *_universality(report["universality"]),
        "### Limits",
        "",
        "- Trained and tested on simulated machines only; no real-plant data has been seen.",
        "- A fault is labelled from its onset, when its effect is still invisible: early windows",
        "  of every fault count as misses in F1, RUL and AUROC (the developed columns show how",
        "  much of the gap that is).",
        "- Remaining useful life cannot be read from one minute of data: the time to failure of",
        "  the simulated faults is random, and a step fault below severity 1 never fails (its",
        "  RUL stays at the 1000 h cap) while it looks like a progressing fault. The RUL error",
        "  in hours is dominated by such 'cap or a few hours' confusions: trust RUL as 'healthy",
        "  (1000 h) vs failing soon', not as a number of hours; its interval is wide by design.",
        "- The test sets are small (a few hundred faulty component-windows per machine): the",
        "  seed-spread table shows how much the same model's numbers move between seeds.",
        "- The anomaly score is a forecast residual: slow drifts that its neighbours share",
        "  are hard to see; sudden changes and broken relations between sensors are easy.",
        "- On a machine never seen in training, fault classes are new; only the anomaly score is",
        "  meant to transfer (see the universality table).",
        "",
        *_FORMAT,
    ]
    return "\n".join(lines)


def _universality(results: Sequence[Mapping[str, Any]]) -> list[str]:
    if not results:
        return []
    lines = [
        "### Universality: a machine never seen in training",
        "",
        "A separate model is trained on three machines and evaluated on the fourth (test seed).",
        "",
        *_table(
            [
                (f"{r['holdout']} (trained on {', '.join(r['trained_on'])})", r["metrics"])
                for r in results
            ],
            "held-out machine",
        ),
        "",
    ]
    for result in results:
        kinds = ", ".join(result["unseen_sensor_kinds"]) or "none"
        lines.append(
            f"- {result['holdout']}: {result['epochs_run']} epochs in {result['seconds']:.0f} s;"
            f" sensor kinds never seen in training: {kinds}."
        )
    lines.append("")
    return lines


def _alarms(calibration: Mapping[str, Any] | None, alarms: Mapping[str, Any] | None) -> list[str]:
    """The status thresholds and what they cost: false alarms and detection delays."""
    if not calibration or not alarms:
        return []
    if not calibration.get("calibrated"):
        return ["### Alarms", "", f"Not calibrated: {calibration.get('reason')}.", ""]
    lines = [
        "### Alarms",
        "",
        f"Status thresholds calibrated on {calibration['healthy_windows']} healthy validation "
        f"windows for {calibration['false_alarm_target']:.0%} false alarms (stored in the "
        "checkpoint; workers use them unless `GNN_DIAGNOSIS__CALIBRATED=false`): warning at "
        f"health < {calibration['warning_health']:.3f}, anomaly score >= "
        f"{calibration['warning_anomaly']:.2f} or fault probability >= "
        f"{calibration['fault_probability']:.3f}; critical at health < "
        f"{calibration['critical_health']:.3f} or anomaly score >= "
        f"{calibration['critical_anomaly']:.2f}. On the test runs (unseen seed):",
        "",
        "| thresholds | healthy windows | with a warning | faulty runs flagged "
        "| median delay | longest delay |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("fixed", "calibrated"):
        row = alarms[name]
        rate = row["false_alarm_rate"]
        lines.append(
            f"| {name} | {row['healthy_windows']} | "
            f"{'n/a' if rate is None else f'{rate:.1%}'} | "
            f"{row['detected_runs']} of {row['faulty_runs']} | "
            f"{_seconds(row['median_delay_s'])} | {_seconds(row['max_delay_s'])} |"
        )
    lines += [
        "",
        "A window is flagged when any component is `warning` or `critical`; the delay runs",
        "from a run's first window with an active fault (labelled from its onset, when its",
        "effect is still invisible) to its first flagged window.",
        "",
    ]
    return lines


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} s"
