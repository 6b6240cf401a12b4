"""The monitoring files under deploy/ checked against the code, so that they cannot drift.

deploy/prometheus/prometheus.yml and alerts.yml and the Grafana dashboard and provisioning
under deploy/grafana/ are written by hand. Every PromQL expression in them (alerts, recording
rules, dashboard targets, dashboard variables) may only name series that a registry built by
service.metrics and service.queue_collector expose (plus the recording rules' own names,
Prometheus' `up`, and Flower's families in the dashboard), and only label names that those
families declare. No PyPI package
ships promtool, so the expressions are read by the small PromQL lexer below, which also
rejects unknown function names; the lexer has tests of its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

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

# PromQL (Prometheus 2 and 3) ----------------------------------------------------------------

_AGGREGATION_NAMES = """sum min max avg group stddev stdvar count count_values bottomk topk
quantile limitk limit_ratio"""
_FUNCTION_NAMES = """abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time
ceil changes clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week
day_of_year days_in_month deg delta deriv double_exponential_smoothing exp floor histogram_avg
histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar
histogram_sum holt_winters hour idelta increase irate label_join label_replace last_over_time
ln log10 log2 mad_over_time max_over_time min_over_time minute month pi predict_linear
present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort
sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time
sum_over_time tan tanh time timestamp vector year"""
AGGREGATIONS = frozenset(_AGGREGATION_NAMES.split())
FUNCTIONS = frozenset(_FUNCTION_NAMES.split())
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"}
)

TOKEN = re.compile(
    r"""
      (?P<space>\s+)
    | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    | (?P<range>\[[^\]]*\])
    | (?P<number>(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?:ms|[smhdwy])*)
    | (?P<variable>\$\{[^}]*\}|\$\w+)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){},@])
    """,
    re.VERBOSE,
)


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


def tokens(expr: str) -> list[tuple[str, str]]:
    """PromQL tokens of ``expr`` (kind, text), without white space; ValueError on junk."""
    out: list[tuple[str, str]] = []
    position = 0
    while position < len(expr):
        match = TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot read PromQL at {expr[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            out.append((kind, match.group()))
        position = match.end()
    return out


def _label_list(toks: list[tuple[str, str]], start: int) -> tuple[list[str], int]:
    """Identifiers of the parenthesised list at ``toks[start]`` and the index after it."""
    labels: list[str] = []
    i = start + 1
    while i < len(toks) and toks[i][1] != ")":
        if toks[i][0] == "ident":
            labels.append(toks[i][1])
        i += 1
    return labels, i + 1


def _selector(toks: list[tuple[str, str]], start: int) -> tuple[dict[str, str], int]:
    """Label matchers of the ``{...}`` at ``toks[start]`` (name -> raw value) and the index
    after it."""
    matchers: dict[str, str] = {}
    i = start + 1
    while i < len(toks) and toks[i][1] != "}":
        kind, text = toks[i]
        if kind == "ident" and i + 2 < len(toks) and toks[i + 1][1] in {"=", "!=", "=~", "!~"}:
            matchers[text] = toks[i + 2][1]
            i += 3
        elif text == ",":
            i += 1
        else:
            raise ValueError(f"cannot read the label matcher at {text!r}")
    return matchers, i + 1


def parse(expr: str) -> Query:
    """Metric names with their selector labels, grouping labels, variables and errors of
    ``expr``: an identifier followed by ``(`` is a function (it must be known), one in a
    grouping clause is a label, a keyword is skipped, and any other is a metric name."""
    query = Query()
    try:
        toks = tokens(expr)
    except ValueError as exc:
        query.errors.append(str(exc))
        return query
    for kind, text in toks:
        if kind == "variable":
            query.variables.add(text.strip("${}").split(":")[0])
        elif kind in {"range", "string"}:
            query.variables.update(re.findall(r"\$\{?(\w+)", text))
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        if kind == "op" and text == "{":  # a selector without a metric name
            matchers, i = _selector(toks, i)
            name = matchers.pop("__name__", "").strip("\"'`")
            if not re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", name):
                query.errors.append(f"selector without a plain metric name: {matchers}")
            query.selectors.append((name, frozenset(matchers)))
        elif kind == "ident":
            i = _identifier(toks, i, query)
            continue
        i += 1
    return query


def _identifier(toks: list[tuple[str, str]], i: int, query: Query) -> int:
    """Read the identifier at ``toks[i]`` into ``query``; the index of the next token."""
    text = toks[i][1]
    lowered = text.lower()
    following = toks[i + 1][1] if i + 1 < len(toks) else ""
    if lowered in GROUPING:
        if following != "(":
            return i + 1
        labels, after = _label_list(toks, i + 1)
        query.grouping.update(labels)
        if lowered == "by":
            query.by.update(labels)
        return after
    if lowered in KEYWORDS and following != "(":
        return i + 1
    if following == "(" or (lowered in AGGREGATIONS and following.lower() in GROUPING):
        if lowered not in FUNCTIONS | AGGREGATIONS:
            query.errors.append(f"unknown function {text}")
        return i + 1
    if following == "{":
        matchers, after = _selector(toks, i + 1)
        query.selectors.append((text, frozenset(matchers) - {"__name__"}))
        return after
    query.selectors.append((text, frozenset()))
    return i + 1


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
        for wrapper in vars(metrics).values()
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


# The lexer ------------------------------------------------------------------------------


def test_the_lexer_finds_metrics_labels_and_grouping() -> None:
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


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("gnn_snapshots_diagnosed[5m]", "unknown metric gnn_snapshots_diagnosed"),
        ("rate(gnn_snapshots_diagnosed_totl[5m])", "unknown metric gnn_snapshots_diagnosed_totl"),
        ('gnn_breaker_state{sate="open"} == 1', "gnn_breaker_state has no label ['sate']"),
        ("sum by (reasn) (rate(gnn_dead_letters_total[5m]))", "grouping by labels"),
        ("rat(gnn_snapshots_diagnosed_total[5m])", "unknown function rat"),
        ("gnn_end_to_end_seconds{le='1'}", "unknown metric gnn_end_to_end_seconds"),
        ("gnn_end_to_end_seconds_count{le='1'}", "has no label ['le']"),
        ("gnn_model_info{versio='1'}", "has no label ['versio']"),
        ("flower_worker_online", "unknown metric flower_worker_online"),
        ("gnn_broker_up ? 1", "cannot read PromQL"),
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
    series = known_series(flower=False)
    found = {
        rule.get("alert") or rule["record"]: problems(rule["expr"], series) for rule in rules()
    }
    assert {name: items for name, items in found.items() if items} == {}


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
    board = dashboard()
    series = known_series(flower=True)
    variables = {var["name"] for var in board["templating"]["list"]}
    flower = set(flower_series())
    found: dict[str, list[str]] = {}
    for panel in panels(board):
        for target in panel.get("targets", []):
            where = f"{panel['title']} / {target['refId']}"
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
                found[where] = items
    assert found == {}


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
