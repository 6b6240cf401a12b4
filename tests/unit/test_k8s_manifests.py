"""deploy/k8s/, checked without a cluster.

- Every built-in resource is validated against the Kubernetes JSON schemas vendored by
  kubernetes-validate (a dev dependency), in strict mode (unknown fields fail), for the oldest
  and the newest Kubernetes release checked. The schemas are read from the installed package
  and its $ref registry has no retriever, so nothing is fetched over the network.
- The KEDA ScaledObject (a CRD, not in those schemas) is checked structurally.
- Then what the schemas cannot say: settings that exist, probes, security context, resources,
  grace period against the batch time limit, placeholders only in the Secret, references that
  resolve, and a kustomization that lists every file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from service.settings import ENV_NESTED_DELIMITER, ENV_PREFIX, Settings, WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
NAMESPACE = "gnn-service"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
PLACEHOLDER = "REPLACE_ME"
URL_PASSWORD = re.compile(r"://[^/:@\s]*:([^@\s]*)@")
WORKLOAD_KINDS = {"Deployment", "Job"}
CRD_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}


def _documents() -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            assert isinstance(doc, dict), f"{path.name}: a document that is not a mapping"
            found.append((path.name, doc))
    return found


def _kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in _documents() if doc["kind"] == kind]


def _one(kind: str, name: str) -> dict[str, Any]:
    matches = [doc for doc in _kind(kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]["template"]["spec"]
    assert isinstance(spec, dict)
    return spec


def _containers() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod spec, container) for every container and init container."""
    out = []
    for _, doc in _documents():
        if doc["kind"] in WORKLOAD_KINDS:
            pod = _pod_spec(doc)
            for container in pod.get("initContainers", []) + pod["containers"]:
                out.append((doc["metadata"]["name"], pod, container))
    return out


def _config() -> dict[str, str]:
    data = _one("ConfigMap", "gnn-service-config")["data"]
    assert isinstance(data, dict)
    return data


def _worker() -> dict[str, Any]:
    return _one("Deployment", "gnn-worker")


def _worker_container() -> dict[str, Any]:
    containers = _pod_spec(_worker())["containers"]
    assert len(containers) == 1
    container = containers[0]
    assert isinstance(container, dict)
    return container


def _is_setting(variable: str) -> bool:
    """Whether GNN_A__B names field b of section a of Settings (or top-level field a)."""
    if not variable.startswith(ENV_PREFIX):
        return False
    parts = variable[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER)
    model: type[BaseModel] = Settings
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i == len(parts) - 1:
            return True
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return False
        model = annotation
    return False


# ---- schemas


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"
    assert kustomization.get("namespace") == NAMESPACE
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed)), "a resource listed twice"
    on_disk = {p.name for p in K8S.iterdir() if p.suffix in {".yaml", ".yml"}}
    on_disk.discard("kustomization.yaml")
    assert set(listed) == on_disk
    assert {p.name for p in K8S.iterdir()} - on_disk == {"kustomization.yaml"}, "stray files"


def test_expected_resources_exist() -> None:
    have = {(doc["kind"], doc["metadata"]["name"]) for _, doc in _documents()}
    assert have >= {
        ("Namespace", NAMESPACE),
        ("ConfigMap", "gnn-service-config"),
        ("Secret", "gnn-service-secrets"),
        ("Deployment", "gnn-worker"),
        ("ScaledObject", "gnn-worker"),
        ("PodDisruptionBudget", "gnn-worker"),
        ("Job", "gnn-migrate"),
        ("Deployment", "flower"),
        ("Service", "flower"),
        ("Deployment", "gnn-exporter"),
        ("Service", "gnn-exporter"),
    }
    assert len(have) == len(_documents()), "two resources share a kind and name"
    for name, doc in _documents():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{name}: {doc['kind']}"


def test_schemas_are_vendored_for_the_versions_checked() -> None:
    # kubernetes-validate falls back silently to an older schema set: make sure both exist.
    versions = kubernetes_validate.utils.all_versions()
    for version in KUBERNETES_VERSIONS:
        assert version in versions, (version, sorted(set(versions)))


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_resources_match_the_kubernetes_schemas(version: str) -> None:
    checked = 0
    errors = []
    for name, doc in _documents():
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        try:
            used = kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            where = f"{name} {doc['kind']}/{doc['metadata']['name']}: {path}"
            errors.append(f"{where}: {error.message[:300]}")
            continue
        assert used == version.rsplit(".", 1)[0], f"validated against {used}, not {version}"
        checked += 1
    assert errors == []
    assert checked >= 10


def test_schema_validation_rejects_a_broken_resource() -> None:
    broken = yaml.safe_load(yaml.safe_dump(_worker()))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] = [9464]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)
    broken = yaml.safe_load(yaml.safe_dump(_worker()))
    broken["spec"]["template"]["spec"]["terminationGracePeriod"] = 90  # unknown field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


# ---- KEDA


def test_scaled_object_scales_the_worker_on_the_queue() -> None:
    (scaled,) = _kind("ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    spec = scaled["spec"]
    assert set(spec) <= {
        "scaleTargetRef",
        "pollingInterval",
        "cooldownPeriod",
        "initialCooldownPeriod",
        "idleReplicaCount",
        "minReplicaCount",
        "maxReplicaCount",
        "fallback",
        "advanced",
        "triggers",
    }, "unknown ScaledObject field"
    target = spec["scaleTargetRef"]
    assert target.get("apiVersion", "apps/v1") == "apps/v1"
    assert target.get("kind", "Deployment") == "Deployment"
    deployments = {doc["metadata"]["name"] for doc in _kind("Deployment")}
    assert target["name"] in deployments
    assert target["name"] == "gnn-worker"
    assert "replicas" not in _worker()["spec"], "KEDA owns the worker's replica count"

    assert spec["minReplicaCount"] == 1
    assert isinstance(spec["maxReplicaCount"], int)
    assert spec["maxReplicaCount"] > spec["minReplicaCount"]
    assert isinstance(spec["cooldownPeriod"], int)
    assert spec["cooldownPeriod"] > 0
    assert isinstance(spec["pollingInterval"], int)

    (trigger,) = spec["triggers"]
    assert trigger["type"] == "redis"
    meta = trigger["metadata"]
    assert all(isinstance(v, str) for v in meta.values()), "KEDA trigger metadata are strings"
    assert meta["listName"] == _config()["GNN_WORKER__QUEUE"]
    assert int(meta["listLength"]) > 0
    assert 0 <= int(meta["activationListLength"]) < int(meta["listLength"])

    broker = urlsplit(_config()["GNN_BROKER__URL"])
    host, _, port = meta["address"].rpartition(":")
    assert host.split(".")[0] == broker.hostname, "the scaler reads another Redis"
    assert host in {broker.hostname, f"{broker.hostname}.{NAMESPACE}.svc.cluster.local"}
    assert int(port) == (broker.port or 6379)
    assert meta.get("databaseIndex", "0") == (broker.path.lstrip("/") or "0")


# ---- settings and secrets


def test_config_map_keys_are_settings() -> None:
    config = _config()
    unknown = [key for key in config if not _is_setting(key)]
    assert unknown == []
    assert all(isinstance(v, str) for v in config.values()), "ConfigMap values are strings"
    # The values must be accepted by Settings as well.
    Settings.model_validate(
        {
            **{
                k[len(ENV_PREFIX) :].lower(): v
                for k, v in config.items()
                if ENV_NESTED_DELIMITER not in k
            },
            **_nested(config),
        }
    )


def _nested(config: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for key, value in config.items():
        if ENV_NESTED_DELIMITER in key:
            section, field = key[len(ENV_PREFIX) :].lower().split(ENV_NESTED_DELIMITER)
            out.setdefault(section, {})[field] = value
    return out


def test_config_map_points_at_the_cluster_services() -> None:
    config = _config()
    for key in ("GNN_BROKER__URL", "GNN_RESULT_BACKEND__URL"):
        url = urlsplit(config[key])
        assert url.scheme == "redis"
        assert url.hostname == "redis"
    assert config["GNN_DATABASE__MIGRATE_ON_START"] == "false"
    assert config["GNN_WORKER__HEALTH_HOST"] == "0.0.0.0"
    assert config["GNN_OBSERVABILITY__TRACING_EXPORTER"] == "otlp"
    assert config["GNN_OBSERVABILITY__OTLP_ENDPOINT"].startswith("http")
    assert "GNN_DATABASE__URL" not in config, "the database URL holds a password: Secret"
    assert not any("PASSWORD" in key for key in config)


def test_every_environment_variable_is_a_setting() -> None:
    for workload, _, container in _containers():
        for item in container.get("env", []):
            assert _is_setting(item["name"]), f"{workload}: {item['name']}"


def test_secret_holds_placeholders_only() -> None:
    (secret,) = _kind("Secret")
    assert "data" not in secret, "use stringData with placeholders, never base64 data"
    data = secret["stringData"]
    assert set(data) == {"GNN_DATABASE__URL", "GNN_SECURITY__FLOWER_PASSWORD"}
    for key, value in data.items():
        assert _is_setting(key), key
        if "PASSWORD" in key:
            assert value == PLACEHOLDER, key
        passwords = URL_PASSWORD.findall(value)
        assert all(p == PLACEHOLDER for p in passwords), key
        if key.endswith("__URL"):
            assert passwords == [PLACEHOLDER], f"{key}: no placeholder password"
    # Nothing anywhere else looks like a credential either.
    for name, doc in _documents():
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        assert URL_PASSWORD.search(text) is None, f"{name}: credentials in a URL"


def test_references_resolve() -> None:
    config = {doc["metadata"]["name"] for doc in _kind("ConfigMap")}
    secrets = {doc["metadata"]["name"]: doc["stringData"] for doc in _kind("Secret")}
    for workload, _, container in _containers():
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config, workload
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets, workload
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                assert ref["key"] in secrets[ref["name"]], f"{workload}: {ref}"


def test_services_select_pods_and_name_their_ports() -> None:
    for service in _kind("Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP", "never exposed publicly"
        selector = service["spec"]["selector"]
        (target,) = [
            d
            for d in _kind("Deployment")
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        ports = {
            p["name"]: p["containerPort"]
            for c in _pod_spec(target)["containers"]
            for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports or port["targetPort"] in ports.values()
    assert _one("Service", "flower")["spec"]["ports"][0]["port"] == 5555
    assert _one("Service", "gnn-exporter")["spec"]["ports"][0]["port"] == 9108


# ---- workloads


def test_every_container_has_resources() -> None:
    for workload, _, container in _containers():
        resources = container.get("resources", {})
        assert resources.get("requests", {}).get("cpu"), workload
        assert resources.get("requests", {}).get("memory"), workload
        assert resources.get("limits", {}).get("memory"), workload


def test_every_container_is_locked_down() -> None:
    for workload, pod, container in _containers():
        pod_context = pod.get("securityContext", {})
        context = container.get("securityContext", {})
        assert pod_context.get("runAsNonRoot") is True, workload
        assert pod_context.get("runAsUser") == 10001, workload  # Dockerfile.worker's user
        assert context.get("runAsUser", 10001) == 10001, workload
        assert context.get("allowPrivilegeEscalation") is False, workload
        assert context.get("readOnlyRootFilesystem") is True, workload
        assert context.get("capabilities", {}).get("drop") == ["ALL"], workload
        assert not context.get("capabilities", {}).get("add"), workload
        assert not context.get("privileged", False), workload
        assert not pod.get("hostNetwork", False), workload
        # Writable places on a read-only root: /tmp and the data directory, both emptyDirs.
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        for path in ("/tmp", _config()["GNN_DATA_DIR"]):
            assert path in mounts, f"{workload}: {path} not mounted"
            assert "emptyDir" in volumes[mounts[path]], f"{workload}: {path}"


def test_images_and_commands() -> None:
    expected = {
        "gnn-worker": ["worker"],
        "gnn-migrate": ["db", "upgrade"],
        "flower": ["flower"],
        "gnn-exporter": ["exporter"],
    }
    seen = {}
    for workload, _, container in _containers():
        assert container["image"].split(":")[0] == "gnn-service-worker", workload
        assert "command" not in container, "the image's ENTRYPOINT is gnn-service"
        seen[workload] = container["args"]
    assert seen == expected
    assert _worker_container()["image"].endswith(":cuda")
    envs = {e["name"]: e.get("value") for e in _worker_container().get("env", [])}
    assert envs.get("GNN_MODEL__DEVICE") == "cuda"


def test_worker_runs_on_a_gpu() -> None:
    limits = _worker_container()["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1


def test_worker_probes_use_the_health_endpoint() -> None:
    container = _worker_container()
    port = WorkerSettings().health_port
    assert str(port) == _config()["GNN_WORKER__HEALTH_PORT"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    paths = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in paths.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path, probe
        assert named.get(get["port"], get["port"]) == port, probe
    startup = container["startupProbe"]
    budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    assert budget >= 180, "model load and warm-up need minutes before liveness counts"
    annotations = _worker()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations.get("prometheus.io/path", "/metrics") == "/metrics"


def test_worker_grace_period_outlasts_the_batch_hard_limit() -> None:
    pod = _pod_spec(_worker())
    grace = pod["terminationGracePeriodSeconds"]
    hard_limit = Settings.model_fields["worker"].default.batch_hard_time_limit_s
    assert hard_limit == WorkerSettings().batch_hard_time_limit_s
    pre_stop = _worker_container()["lifecycle"]["preStop"]
    command = pre_stop["exec"]["command"]
    assert command[0] == "sleep"
    sleep_s = float(command[1])
    assert 0 < sleep_s <= 15, "preStop only pauses; the warm shutdown follows SIGTERM"
    # The grace period counts from preStop: the pause, the batch in hand, and its storing.
    assert grace > sleep_s + hard_limit + WorkerSettings().settle_budget_s
    assert grace >= sleep_s + hard_limit + 15, "leave time to store and ack the last batch"


def test_pod_disruption_budget_covers_the_workers() -> None:
    (pdb,) = _kind("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    labels = _worker()["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_migration_job() -> None:
    job = _one("Job", "gnn-migrate")
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    assert _pod_spec(job)["restartPolicy"] in {"Never", "OnFailure"}


def test_flower_and_exporter() -> None:
    flower = _pod_spec(_one("Deployment", "flower"))["containers"][0]
    env = {e["name"]: e for e in flower["env"]}
    assert env["GNN_SECURITY__FLOWER_ADDRESS"]["value"] == "0.0.0.0"
    ref = env["GNN_SECURITY__FLOWER_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "gnn-service-secrets", "key": "GNN_SECURITY__FLOWER_PASSWORD"}
    assert [p["containerPort"] for p in flower["ports"]] == [5555]
    exporter = _pod_spec(_one("Deployment", "gnn-exporter"))["containers"][0]
    env = {e["name"]: e for e in exporter["env"]}
    assert env["GNN_OBSERVABILITY__EXPORTER_HOST"]["value"] == "0.0.0.0"
    assert [p["containerPort"] for p in exporter["ports"]] == [9108]
    # Only the workers and the migration need the database password.
    for workload, _, container in _containers():
        refs = {
            e["valueFrom"]["secretKeyRef"]["key"]
            for e in container.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        if "GNN_DATABASE__URL" in refs:
            assert workload in {"gnn-worker", "gnn-migrate"}, workload
