"""The monitoring files under deploy/ checked against the code, so that they cannot drift.

deploy/prometheus/prometheus.yml and alerts.yml and the Grafana dashboard and provisioning
under deploy/grafana/ are written by hand. Every PromQL expression in them (alerts, recording
rules, dashboard targets, dashboard variables) may only name series that a registry built by
service.metrics and service.queue_collector expose (plus the recording rules' own names,
Prometheus' `up`, and Flower's families in the dashboard), and only label names that those
families declare. No PyPI package ships promtool, so the expressions are read by
promql-parser (Prometheus' own grammar, ported to Rust), which also rejects unknown function
names; what this file collects from its syntax tree has tests of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any
from unittest import mock

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY, CollectorRegistry

from service.metrics import ServiceMetrics
from service.queue_collector import QueueCollector
from service.settings import ObservabilitySettings, SecuritySettings, WorkerSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "gnn-service.json"
GRAFANA_DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
GRAFANA_DASHBOARDS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "gnn-service.yml"

# PromQL ----------------------------------------------------------------------------------

#: A PromQL string literal, kept as it is (a variable in a label value parses), or a Grafana
#: variable outside one ($queue, ${job:regex}, $__rate_interval), which does not.
STRING_OR_VARIABLE = re.compile(
    r""""(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`|\$\{(\w+)[^}]*\}|\$(\w+)"""
)
#: What such a variable becomes before parsing: a duration, which PromQL also reads as a
#: number, so it stands in for a range, an offset or a scalar argument alike. A variable in
#: a label position (`by ($label)`) stays unparsable: nothing could check it.
VARIABLE_STAND_IN = "5m"


@dataclass
class Query:
    """What one PromQL expression refers to."""

    selectors: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    by: set[str] = field(default_factory=set)  # labels of by (...) clauses
    grouping: set[str] = field(default_factory=set)  # labels of every grouping clause
    variables: set[str] = field(default_factory=set)  # Grafana variables ($job, ${queue})
    errors: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> set[str]:
        return {name for name, _ in self.selectors}


def _stand_in(match: re.Match[str]) -> str:
    return match[0] if match[1] is None and match[2] is None else VARIABLE_STAND_IN


def parse(expr: str) -> Query:
    """Metric names with their selector labels, grouping labels, Grafana variables and
    errors of ``expr``, read from promql_parser's syntax tree once the variables outside
    strings are replaced; an expression it cannot parse is an error that quotes it."""
    query = Query(variables=set(re.findall(r"\$\{?(\w+)", expr)))
    try:
        tree = promql_parser.parse(STRING_OR_VARIABLE.sub(_stand_in, expr))
    except ValueError as exc:
        query.errors.append(f"cannot parse {expr!r}: {exc}")
        return query
    promql_parser.walk(tree, lambda node: _collect(node, query))
    return query


def _collect(node: promql_parser.Expr, query: Query) -> None:
    """Read one node into ``query``. walk() also visits the VectorSelector inside every
    MatrixSelector and subquery, so selectors are read there alone."""
    if isinstance(node, promql_parser.VectorSelector):
        matchers = [*node.matchers.matchers, *chain.from_iterable(node.matchers.or_matchers)]
        name = node.name
        if name is None:  # {__name__="..."}
            by_name = [m for m in matchers if m.name == "__name__"]
            if len(by_name) != 1 or by_name[0].op != promql_parser.MatchOp.Equal:
                query.errors.append(f"selector without a plain metric name: {node}")
                return
            name = by_name[0].value
        query.selectors.append((name, frozenset(m.name for m in matchers) - {"__name__"}))
    elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
        query.grouping.update(node.modifier.labels)  # by (...) or without (...)
        if node.modifier.type == promql_parser.AggModifierType.By:
            query.by.update(node.modifier.labels)
    elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
        if node.modifier.matching is not None:  # on (...) or ignoring (...)
            query.grouping.update(node.modifier.matching.labels)
        query.grouping.update(node.modifier.group_labels or ())  # group_left/right (...)


# What the service exposes ---------------------------------------------------------------

SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
#: Series Prometheus itself writes for every target.
SCRAPE_SERIES = (
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
)


def _add_family(series: dict[str, frozenset[str]], name: str, kind: str, labels: set[str]) -> None:
    for suffix in SERIES_SUFFIXES[kind]:
        extra = {"le"} if suffix == "_bucket" else {"quantile"} if kind == "summary" else set()
        series[name + suffix] = frozenset((labels - {"le", "quantile"}) | extra)


def service_series() -> dict[str, frozenset[str]]:
    """Every series name a worker's /metrics or `gnn-service exporter` exposes, with the
    label names of its family: ServiceMetrics, the process and platform collectors, and the
    queue families, from fresh registries."""
    registry = CollectorRegistry()
    metrics = ServiceMetrics(registry)
    # An Info family's labels are its keys, known once something is recorded.
    metrics.record_model(version="1", device="cpu", load_s=0.0, warmup_s=0.0, swap=False)
    queue = QueueCollector(lambda: None, ["gnn.snapshots"])
    registry.register(queue)
    declared = {
        wrapper._name: set(wrapper._labelnames)
        for wrapper in [*vars(metrics).values(), *vars(metrics.per_model).values()]
        if hasattr(wrapper, "_labelnames")
    }
    declared.update({family.name: set(family._labelnames) for family in queue._families()})
    series: dict[str, frozenset[str]] = {}
    for family in registry.collect():
        labels = declared.get(family.name, set()) | {
            key for sample in family.samples for key in sample.labels
        }
        _add_family(series, family.name, family.type, labels)
    return series


def flower_series() -> dict[str, frozenset[str]]:
    """The flower_* series Flower serves on its /metrics, from Flower's own definitions."""
    from flower.events import PrometheusMetrics

    with mock.patch.object(REGISTRY, "register"):  # keep the global registry untouched
        definitions = PrometheusMetrics()
    series: dict[str, frozenset[str]] = {}
    for wrapper in vars(definitions).values():
        _add_family(series, wrapper._name, wrapper._type, set(wrapper._labelnames))
    return series


# Loading the files ----------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate mapping keys (PyYAML keeps the last)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    keys = [loader.construct_object(key) for key, _ in node.value]
    duplicates = sorted({str(k) for k in keys if keys.count(k) > 1})
    if duplicates:
        raise yaml.constructor.ConstructorError(
            None, None, f"duplicate keys {duplicates}", node.start_mark
        )
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_UniqueKeyLoader)


def load_json(path: Path) -> Any:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        assert not duplicates, f"{path.name}: duplicate keys {duplicates}"
        return dict(pairs)

    return json.loads(path.read_text(), object_pairs_hook=unique)


def prometheus_config() -> dict[str, Any]:
    config = load_yaml(PROMETHEUS_CONFIG)
    assert isinstance(config, dict)
    return config


def rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for name in prometheus_config()["rule_files"]:
        groups.extend(load_yaml(PROMETHEUS_CONFIG.parent / name)["groups"])
    return groups


def rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    board = load_json(DASHBOARD)
    assert isinstance(board, dict)
    return board


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def target_labels() -> frozenset[str]:
    """Labels Prometheus attaches to every scraped series: job, instance, static labels and
    relabelled targets."""
    labels = {"job", "instance"}
    for job in prometheus_config()["scrape_configs"]:
        for static in job.get("static_configs", []):
            labels.update(static.get("labels", {}))
        for relabel in job.get("relabel_configs", []):
            labels.add(relabel.get("target_label", "__"))
    return frozenset(label for label in labels if not label.startswith("__"))


# Checking expressions -------------------------------------------------------------------


def known_series(*, flower: bool) -> dict[str, frozenset[str]]:
    """Series an expression may name: the service's, Prometheus' per-target ones, the
    recording rules' (labels: their by (...) labels, else those of what they read), and in
    the dashboard Flower's."""
    series = service_series()
    series.update({name: frozenset() for name in SCRAPE_SERIES})
    if flower:
        series.update(flower_series())
    for rule in rules():
        if "record" in rule:
            query = parse(rule["expr"])
            labels = query.by - {"le"} or frozenset().union(
                *(series.get(name, frozenset()) for name in query.metrics)
            )
            series[rule["record"]] = frozenset(labels)
    return series


def output_labels(query: Query, series: dict[str, frozenset[str]]) -> frozenset[str]:
    """Labels the result of ``query`` may carry (an over-approximation)."""
    if query.by:
        return frozenset(query.by - {"le"})
    return frozenset().union(*(series.get(name, frozenset()) for name in query.metrics)) | (
        target_labels()
    )


def problems(expr: str, series: dict[str, frozenset[str]]) -> list[str]:
    """What is wrong with ``expr``: unknown metrics, labels or functions."""
    query = parse(expr)
    found = list(query.errors)
    if not query.selectors:
        found.append("no metric named")
    targets = target_labels()
    in_scope: set[str] = set(targets)
    for name, labels in query.selectors:
        if name not in series:
            found.append(f"unknown metric {name}")
            continue
        in_scope |= series[name]
        unknown = labels - series[name] - targets
        if unknown:
            found.append(f"{name} has no label {sorted(unknown)}")
    stray = query.grouping - in_scope
    if stray:
        found.append(f"grouping by labels none of {sorted(query.metrics)} has: {sorted(stray)}")
    return found


def templated_labels(text: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, text))


def rule_problems(
    every_rule: list[dict[str, Any]], series: dict[str, frozenset[str]]
) -> dict[str, list[str]]:
    """What is wrong with each rule's expression, by alert or record name; clean ones left out."""
    found = {
        rule.get("alert") or rule["record"]: problems(rule["expr"], series) for rule in every_rule
    }
    return {name: items for name, items in found.items() if items}


def dashboard_problems(
    board: dict[str, Any], series: dict[str, frozenset[str]]
) -> dict[str, list[str]]:
    """What is wrong with each dashboard target, by "panel title / refId": the expression,
    its variables, the labels its legend uses, and Flower and service series mixed."""
    variables = {var["name"] for var in board["templating"]["list"]}
    flower = set(flower_series())
    found: dict[str, list[str]] = {}
    for panel in panels(board):
        for target in panel.get("targets", []):
            query = parse(target["expr"])
            items = problems(target["expr"], series)
            undefined = {v for v in query.variables if not v.startswith("__")} - variables
            if undefined:
                items.append(f"undefined variables {sorted(undefined)}")
            legend = templated_labels(target.get("legendFormat", ""), r"\{\{\s*(\w+)\s*\}\}")
            missing = legend - output_labels(query, series)
            if missing:
                items.append(f"legend uses labels the query lacks: {sorted(missing)}")
            if query.metrics & flower and query.metrics - flower:
                items.append("Flower and service series in one query")
            if items:
                found[f"{panel['title']} / {target['refId']}"] = items
    return found


# The parser -----------------------------------------------------------------------------


def test_the_parser_finds_metrics_labels_grouping_and_variables() -> None:
    query = parse(
        'histogram_quantile(0.95, sum by (job, le) (rate(gnn_end_to_end_seconds_bucket{job=~"$job",'
        ' instance!=""}[$__rate_interval] offset 5m))) > 1e3 and on (job) absent(up) or vector(1)'
    )
    assert query.errors == []
    assert query.selectors == [
        ("gnn_end_to_end_seconds_bucket", frozenset({"job", "instance"})),
        ("up", frozenset()),
    ]
    assert query.by == {"job", "le"}
    assert query.grouping == {"job", "le"}
    assert query.variables == {"job", "__rate_interval"}


def test_the_parser_reads_every_clause_that_names_labels() -> None:
    query = parse(
        'max_over_time(sum without (device) (gnn_model_info{version!="" or device="cpu"})'
        "[${__range}:1m]) * ignoring (version) group_left (queue) topk($top, "
        '{__name__="gnn_queue_depth_messages", queue=~"${queue:regex}"})'
    )
    assert query.errors == []
    assert query.selectors == [
        ("gnn_model_info", frozenset({"version", "device"})),
        ("gnn_queue_depth_messages", frozenset({"queue"})),
    ]
    assert query.by == set()
    assert query.grouping == {"device", "version", "queue"}
    assert query.variables == {"__range", "top", "queue"}


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("gnn_snapshots_diagnosed[5m]", "unknown metric gnn_snapshots_diagnosed"),
        ("rate(gnn_snapshots_diagnosed_totl[5m])", "unknown metric gnn_snapshots_diagnosed_totl"),
        ('gnn_breaker_state{sate="open"} == 1', "gnn_breaker_state has no label ['sate']"),
        ('gnn_breaker_state{state="open" or sate="x"}', "gnn_breaker_state has no label ['sate']"),
        ('{__name__="gnn_broker_upp"}', "unknown metric gnn_broker_upp"),
        ('{__name__=~"gnn_.*"}', "selector without a plain metric name"),
        ("sum by (reasn) (rate(gnn_dead_letters_total[5m]))", "grouping by labels"),
        ("sum without (reasn) (gnn_dead_letters_total)", "grouping by labels"),
        ("gnn_broker_up * on (instanse) gnn_worker_ready", "grouping by labels"),
        ("gnn_broker_up * ignoring (instanse) gnn_worker_ready", "grouping by labels"),
        ("gnn_broker_up * on (job) group_left (versio) gnn_model_info", "grouping by labels"),
        ("rat(gnn_snapshots_diagnosed_total[5m])", "unknown function with name 'rat'"),
        ("gnn_end_to_end_seconds{le='1'}", "unknown metric gnn_end_to_end_seconds"),
        ("gnn_end_to_end_seconds_count{le='1'}", "has no label ['le']"),
        ("gnn_model_info{versio='1'}", "has no label ['versio']"),
        ("flower_worker_online", "unknown metric flower_worker_online"),
        ("gnn_broker_up ? 1", "cannot parse 'gnn_broker_up ? 1'"),
        ("sum by ($queue) (gnn_queue_depth_messages)", "cannot parse 'sum by ($queue)"),
        ("1 + 1", "no metric named"),
    ],
)
def test_the_checks_catch(expr: str, problem: str) -> None:
    found = problems(expr, known_series(flower=False))
    assert any(problem in item for item in found), found


def test_the_checks_accept_every_kind_of_exposed_series() -> None:
    series = known_series(flower=True)
    for expr in (
        "sum(rate(gnn_snapshots_diagnosed_total[5m]))",
        'histogram_quantile(0.5, sum by (le) (rate(gnn_forward_seconds_bucket{le!=""}[5m])))',
        "gnn_model_info{version!='', device='cpu'}",
        'max by (queue) (gnn_queue_oldest_message_age_seconds{queue="gnn.snapshots"})',
        "rate(process_cpu_seconds_total[1m]) + process_resident_memory_bytes",
        "sum by (type) (rate(flower_events_total{worker!=''}[5m]))",
        "job:gnn_end_to_end_seconds:p95_5m > 1",
    ):
        assert problems(expr, series) == [], expr


# Prometheus -----------------------------------------------------------------------------


def test_the_prometheus_config_scrapes_workers_exporter_and_flower() -> None:
    config = prometheus_config()
    assert {"scrape_interval", "evaluation_interval"} <= set(config["global"])
    assert config["rule_files"] == ["alerts.yml"]
    for name in config["rule_files"]:
        assert (PROMETHEUS_CONFIG.parent / name).is_file()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert len(jobs) == len(config["scrape_configs"]), "job names must be unique"
    ports = {
        "gnn-worker": WorkerSettings.model_fields["health_port"].default,
        "gnn-exporter": ObservabilitySettings.model_fields["exporter_port"].default,
        "flower": SecuritySettings.model_fields["flower_port"].default,
    }
    for name, port in ports.items():
        targets = [t for static in jobs[name]["static_configs"] for t in static["targets"]]
        assert targets, name
        assert all(t.endswith(f":{port}") for t in targets), (name, targets)
    auth = jobs["flower"]["basic_auth"]
    assert auth == {
        "username": SecuritySettings.model_fields["flower_user"].default,
        "password_file": "/etc/prometheus/flower-password",
    }
    text = PROMETHEUS_CONFIG.read_text()
    assert "#   - role: pod" in text, "the Kubernetes pod discovery example is gone"


def test_every_rule_reads_only_series_and_labels_the_service_exposes() -> None:
    assert rule_problems(rules(), known_series(flower=False)) == {}


@pytest.mark.parametrize(
    ("name", "old", "new", "problem"),
    [
        ("GnnBrokerDown", "gnn_broker_up", "gnn_broker_upp", "unknown metric gnn_broker_upp"),
        ("GnnBreakerOpen", 'state="open"', 'stat="open"', "has no label ['stat']"),
        ("GnnDeadLettersRising", "(job, reason)", "(job, reasn)", "labels none of"),
        ("GnnBrokerDown", "== 0", "=== 0", "cannot parse {expr}"),
        ("job:gnn_snapshots_acked:rate5m", "rate(", "rat(", "unknown function with name 'rat'"),
    ],
)
def test_a_rule_broken_in_memory_is_reported_by_name(
    name: str, old: str, new: str, problem: str
) -> None:
    broken = rules()
    (rule,) = [rule for rule in broken if name in (rule.get("alert"), rule.get("record"))]
    assert old in rule["expr"]
    rule["expr"] = rule["expr"].replace(old, new)
    found = rule_problems(broken, known_series(flower=False))
    assert list(found) == [name]
    problem = problem.format(expr=repr(rule["expr"]))
    assert any(problem in item for item in found[name]), found


def test_every_alert_has_for_severity_summary_and_description() -> None:
    series = known_series(flower=False)
    alerts = [rule for rule in rules() if "alert" in rule]
    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names)), "alert names must be unique"
    for rule in alerts:
        name = rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        assert re.fullmatch(r"(\d+[smhdwy])+", str(rule.get("for", ""))), name
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name
        used = templated_labels(json.dumps(rule["annotations"]), r"\$labels\.(\w+)")
        missing = used - output_labels(parse(rule["expr"]), series)
        assert not missing, f"{name}: annotations use labels the alert lacks: {sorted(missing)}"


def test_the_required_alerts_and_recording_rules_exist() -> None:
    exprs = {rule.get("alert") or rule["record"]: rule["expr"] for rule in rules()}
    required = {
        "GnnQueueBacklogGrowing": ("deriv(gnn_queue_depth_messages[10m])",),
        "GnnOldestMessageTooOld": ("gnn_queue_oldest_message_age_seconds",),
        "GnnEndToEndLatencyHigh": ("histogram_quantile(0.95", "gnn_end_to_end_seconds_bucket"),
        "GnnBreakerOpen": ('gnn_breaker_state{state="open"} == 1',),
        "GnnConsumptionPausedByDatabase": ('gnn_consumption_paused{reason="database"}',),
        "GnnDeadLettersRising": ("reason", "rate(gnn_dead_letters_total"),
        "GnnDatabaseRetriesRising": ("gnn_db_retries_total",),
        "GnnDatabaseWriteErrors": ("gnn_db_errors_total",),
        "GnnNoWorkerReady": ("absent(gnn_worker_ready)", "sum(gnn_worker_ready) == 0"),
        "GnnBrokerDown": ("gnn_broker_up == 0",),
        "GnnOutOfMemory": ("gnn_out_of_memory_total",),
        "GnnWorkerVanishedHoldingMessages": ("gnn_messages_restored_total",),
        "job:gnn_snapshots_diagnosed:rate5m": ("rate(gnn_snapshots_diagnosed_total",),
        "job:gnn_end_to_end_seconds:p50_5m": ("histogram_quantile(0.50",),
        "job:gnn_end_to_end_seconds:p95_5m": ("histogram_quantile(0.95",),
        "job:gnn_end_to_end_seconds:p99_5m": ("histogram_quantile(0.99",),
    }
    for name, fragments in required.items():
        assert name in exprs, name
        for fragment in fragments:
            assert fragment in exprs[name], (name, fragment)
    records = [rule["record"] for rule in rules() if "record" in rule]
    assert len(records) == len(set(records))
    assert all(re.fullmatch(r"\w+:\w+:\w+", name) for name in records), records


# Grafana ----------------------------------------------------------------------------------


def test_the_dashboard_panels_have_titles_targets_unique_ids_and_fit_the_grid() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39
    assert board["uid"]
    assert board["title"]
    everything = list(panels(board))
    ids = [panel["id"] for panel in everything]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in everything:
        assert panel.get("title", "").strip(), panel["id"]
        grid = panel["gridPos"]
        assert grid["w"] >= 1
        assert grid["h"] >= 1
        assert 0 <= grid["x"] <= grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        targets = panel.get("targets", [])
        assert targets, f"panel {panel['title']!r} has no target"
        assert all(target.get("expr", "").strip() for target in targets), panel["title"]
        refs = [target["refId"] for target in targets]
        assert len(refs) == len(set(refs)), panel["title"]
        for source in [panel.get("datasource"), *(t.get("datasource") for t in targets)]:
            assert source in (None, {"type": "prometheus", "uid": "${datasource}"}), panel["title"]
    assert len([p for p in everything if p["type"] != "row"]) >= 40


def test_every_dashboard_query_reads_only_series_and_labels_that_exist() -> None:
    assert dashboard_problems(dashboard(), known_series(flower=True)) == {}


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("min(gnn_broker_up)", "min(gnn_broker_upp)", "unknown metric gnn_broker_upp"),
        ('instance=~"$instance"', 'instanc=~"$instance"', "has no label ['instanc']"),
        ("sum by (reason)", "sum by (reasn)", "labels none of"),
        ('queue=~"$queue"', 'queue=~"$queu"', "undefined variables ['queu']"),
        ("[$__rate_interval]))", "[$__rate_interval))", "cannot parse {expr}"),
        ("sum(flower_worker_online)", "sum(flower_worker_online) * gnn_broker_up", "Flower and"),
    ],
)
def test_a_dashboard_query_broken_in_memory_is_reported_by_panel(
    old: str, new: str, problem: str
) -> None:
    board = dashboard()
    targets = [(p, t) for p in panels(board) for t in p.get("targets", []) if old in t["expr"]]
    assert targets, old
    panel, target = targets[0]
    target["expr"] = target["expr"].replace(old, new)
    found = dashboard_problems(board, known_series(flower=True))
    where = f"{panel['title']} / {target['refId']}"
    assert list(found) == [where]
    problem = problem.format(expr=repr(target["expr"]))
    assert any(problem in item for item in found[where]), found


def test_a_legend_label_the_query_drops_is_reported() -> None:
    board = dashboard()
    panel, target = next(
        (p, t)
        for p in panels(board)
        for t in p.get("targets", [])
        if "sum by (reason)" in t["expr"]
    )
    target["legendFormat"] = "{{ reason }} on {{ queue }}"
    found = dashboard_problems(board, known_series(flower=True))
    assert found == {
        f"{panel['title']} / {target['refId']}": ["legend uses labels the query lacks: ['queue']"]
    }


def test_the_dashboard_variables_select_existing_labels() -> None:
    board = dashboard()
    series = known_series(flower=True)
    kinds = {var["name"]: var for var in board["templating"]["list"]}
    assert kinds["datasource"]["type"] == "datasource"
    assert kinds["datasource"]["query"] == "prometheus"
    for var in board["templating"]["list"]:
        if var["type"] != "query":
            continue
        assert var["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, var["name"]
        text = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text.strip())
        assert match, f"{var['name']}: expected label_values(selector, label), got {text!r}"
        selector, label = match.groups()
        assert problems(selector, series) == [], var["name"]
        exposed = output_labels(parse(selector), series)
        assert label in exposed, f"{var['name']}: no label {label} on {selector}"


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard_folder() -> None:
    sources = load_yaml(GRAFANA_DATASOURCES)
    assert sources["apiVersion"] == 1
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"].endswith(":9090")
    providers = load_yaml(GRAFANA_DASHBOARDS)
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]
    assert sorted(p.name for p in DASHBOARD.parent.glob("*.json")) == [DASHBOARD.name]
