"""deploy/kubernetes: every manifest of the base and of both sandbox variants is valid Kubernetes (offline, strict:
an unknown field is an error), and the pieces fit together the way a user relies on them.

The variants are kustomize overlays whose patches are strategic merges. ``render`` applies them the way kustomize
does for the shapes used here (maps merge, the lists below merge by their key, other lists are replaced); where
``kubectl`` is installed, a test checks that ``kubectl kustomize`` renders the same objects.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
BASE = K8S / "base"
VARIANTS = ("base", "sandbox-dind", "sandbox-bwrap")
# The oldest release the manifests use fields of (appArmorProfile: 1.30), and the one where pod user namespaces and
# procMount are on by default (the bwrap variant's needs).
KUBERNETES_VERSIONS = ("1.30", "1.33")
# Strategic-merge keys of the lists the patches touch (Kubernetes' patchMergeKey); other lists are replaced.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}

Resource = dict[str, Any]


# -- rendering -----------------------------------------------------------------------------------------------


def load_all(path: Path) -> list[Resource]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def merge(base: Any, patch: Any, field: str = "") -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(base[key], value, key) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out_list = list(base)
        for item in patch:
            at = next((i for i, old in enumerate(out_list) if old.get(key) == item.get(key)), None)
            if at is None:
                out_list.append(copy.deepcopy(item))
            else:
                out_list[at] = merge(out_list[at], item, "")
        return out_list
    return copy.deepcopy(patch)


def kustomization(directory: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return data


def render(variant: str) -> list[Resource]:
    """The objects `kubectl apply -k deploy/kubernetes/<variant>` creates."""
    directory = K8S / variant
    resources: list[Resource] = []
    for entry in kustomization(directory).get("resources", []):
        path = (directory / entry).resolve()
        resources += render(path.relative_to(K8S).as_posix()) if path.is_dir() else load_all(path)
    for patch_entry in kustomization(directory).get("patches", []):
        for patch in load_all(directory / patch_entry["path"]):
            index = next(
                i
                for i, res in enumerate(resources)
                if (res["kind"], res["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
            )
            resources[index] = merge(resources[index], patch)
    return resources


RENDERED = {variant: render(variant) for variant in VARIANTS}


def one(resources: list[Resource], kind: str, name: str | None = None) -> Resource:
    found = [r for r in resources if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def pod_spec(resources: list[Resource]) -> dict[str, Any]:
    spec: dict[str, Any] = one(resources, "Deployment", "rlvr")["spec"]["template"]["spec"]
    return spec


def container(resources: list[Resource], name: str = "rlvr") -> dict[str, Any]:
    spec = pod_spec(resources)
    return next(c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name)


def config(resources: list[Resource]) -> dict[str, str]:
    data: dict[str, str] = one(resources, "ConfigMap", "rlvr-config")["data"]
    return data


def environment(resources: list[Resource]) -> dict[str, str]:
    """The service container's RLVR_* variables as the kubelet sets them (env beats envFrom)."""
    rlvr = container(resources)
    env = dict(config(resources)) if rlvr.get("envFrom") == [{"configMapRef": {"name": "rlvr-config"}}] else {}
    for var in rlvr.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["resourceFieldRef"]
            limit = container(resources, ref["containerName"])["resources"]["limits"][ref["resource"].split(".")[1]]
            env[var["name"]] = str(math.ceil(float(limit) / float(ref.get("divisor", "1"))))
    return env


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# -- schema validation ---------------------------------------------------------------------------------------


def validation_cases() -> Iterator[Any]:
    for variant, resources in RENDERED.items():
        for resource in resources:
            for version in KUBERNETES_VERSIONS:
                name = f"{variant}:{resource['kind']}/{resource['metadata']['name']}@{version}"
                yield pytest.param(resource, version, id=name)
    for resource in load_all(BASE / "secret.example.yaml"):
        for version in KUBERNETES_VERSIONS:
            yield pytest.param(resource, version, id=f"secret.example:{resource['metadata']['name']}@{version}")


@pytest.mark.parametrize(("resource", "version"), list(validation_cases()))
def test_manifest_is_valid_kubernetes(resource: Resource, version: str) -> None:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(resource, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{'.'.join(map(str, exc.path))}: {exc.message}", pytrace=False)


@pytest.mark.parametrize(
    ("where", "field"),
    [
        pytest.param(("spec", "template", "spec", "containers", 0), "readinesProbe", id="misspelt-container-field"),
        pytest.param(("spec", "template", "spec"), "terminationGracePeriod", id="misspelt-pod-field"),
        pytest.param(("spec",), "minReplica", id="misspelt-spec-field"),
    ],
)
def test_the_validation_refuses_unknown_fields(where: tuple[str | int, ...], field: str) -> None:
    """The check above would pass anything if strict mode were off: a typo must fail it."""
    import kubernetes_validate

    deployment = copy.deepcopy(one(RENDERED["base"], "Deployment", "rlvr"))
    node: Any = deployment
    for step in where:
        node = node[step]
    node[field] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def test_every_base_manifest_is_in_the_kustomization() -> None:
    listed = set(kustomization(BASE)["resources"])
    on_disk = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk
    assert "secret.example.yaml" not in listed, "apply -k must never overwrite a real Secret with the placeholder"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (kustomize comparison)")
@pytest.mark.parametrize("variant", [pytest.param(v, id=v) for v in VARIANTS])
def test_kustomize_renders_what_the_tests_check(variant: str) -> None:
    run = subprocess.run(["kubectl", "kustomize", str(K8S / variant)], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr

    def canonical(resources: list[Resource]) -> list[str]:
        def sort_lists(node: Any, field: str = "") -> Any:
            if isinstance(node, dict):
                return {key: sort_lists(value, key) for key, value in node.items()}
            if isinstance(node, list):
                items = [sort_lists(item) for item in node]
                if field not in MERGE_KEYS:
                    return items
                # kustomize puts a patch's new list items first, ``merge`` last: the order of merged lists is free
                return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
            return node

        return sorted(json.dumps(sort_lists(r), sort_keys=True) for r in resources)

    assert canonical([d for d in yaml.safe_load_all(run.stdout) if d]) == canonical(RENDERED[variant])


# -- how the pieces fit --------------------------------------------------------------------------------------

ALL = [pytest.param(v, id=v) for v in VARIANTS]


@pytest.mark.parametrize("variant", ALL)
@pytest.mark.parametrize(
    ("probe", "path"),
    [
        pytest.param("readinessProbe", "/readyz", id="readiness"),
        pytest.param("livenessProbe", "/healthz", id="liveness"),
        pytest.param("startupProbe", "/healthz", id="startup"),
    ],
)
def test_probes_ask_the_service_on_its_port(variant: str, probe: str, path: str) -> None:
    rlvr = container(RENDERED[variant])
    check = rlvr[probe]["httpGet"]
    assert check["path"] == path
    ports = {p["name"]: p["containerPort"] for p in rlvr["ports"]}
    port = ports[check["port"]] if isinstance(check["port"], str) else check["port"]
    assert port == int(environment(RENDERED[variant])["RLVR_PORT"]) == 8000


@pytest.mark.parametrize("variant", ALL)
def test_the_startup_probe_gives_a_slow_start_time(variant: str) -> None:
    startup = container(RENDERED[variant])["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


@pytest.mark.parametrize("variant", ALL)
@pytest.mark.parametrize("service", [pytest.param("rlvr", id="rlvr"), pytest.param("rlvr-replicas", id="headless")])
def test_the_services_reach_the_pods(variant: str, service: str) -> None:
    resources = RENDERED[variant]
    spec = one(resources, "Service", service)["spec"]
    template = one(resources, "Deployment", "rlvr")["spec"]["template"]
    assert selects(spec["selector"], template["metadata"]["labels"])
    port_names = {p["name"] for p in container(resources)["ports"]}
    assert [(p["port"], p["targetPort"] in port_names) for p in spec["ports"]] == [(8000, True)]


@pytest.mark.parametrize("variant", ALL)
def test_the_deployment_selector_matches_its_pods(variant: str) -> None:
    deployment = one(RENDERED[variant], "Deployment", "rlvr")
    assert selects(deployment["spec"]["selector"]["matchLabels"], deployment["spec"]["template"]["metadata"]["labels"])
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns the replica count"


@pytest.mark.parametrize("variant", ALL)
def test_the_autoscaler_targets_the_deployment(variant: str) -> None:
    spec = one(RENDERED[variant], "HorizontalPodAutoscaler", "rlvr")["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rlvr"}
    assert 2 <= spec["minReplicas"] < spec["maxReplicas"]
    assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu"]
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] >= 300, "training bursts would flap it"


@pytest.mark.parametrize("variant", ALL)
def test_the_disruption_budget_covers_the_pods(variant: str) -> None:
    resources = RENDERED[variant]
    spec = one(resources, "PodDisruptionBudget", "rlvr")["spec"]
    labels = one(resources, "Deployment", "rlvr")["spec"]["template"]["metadata"]["labels"]
    assert selects(spec["selector"]["matchLabels"], labels)
    assert spec.get("maxUnavailable") == 1 or spec.get("minAvailable") == 1


@pytest.mark.parametrize("variant", ALL)
def test_a_pod_outlives_its_drain(variant: str) -> None:
    """The kubelet's SIGKILL comes after the preStop sleep plus the service's own drain (RLVR_SHUTDOWN_GRACE_S)."""
    resources = RENDERED[variant]
    grace = pod_spec(resources)["terminationGracePeriodSeconds"]
    pre_stop = container(resources)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    shutdown_grace = float(environment(resources)["RLVR_SHUTDOWN_GRACE_S"])
    assert grace > float(pre_stop[1]) + shutdown_grace


@pytest.mark.parametrize("variant", ALL)
def test_the_service_container_is_locked_down(variant: str) -> None:
    resources = RENDERED[variant]
    pod = pod_spec(resources)["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001
    rlvr = container(resources)["securityContext"]
    assert rlvr["runAsNonRoot"] is True and rlvr.get("runAsUser", pod["runAsUser"]) != 0
    assert rlvr["allowPrivilegeEscalation"] is False
    assert rlvr["readOnlyRootFilesystem"] is True
    assert rlvr["capabilities"] == {"drop": ["ALL"]}
    assert not rlvr.get("privileged", False)
    mounts = {m["mountPath"] for m in container(resources)["volumeMounts"]}
    assert "/tmp" in mounts, "a read-only root needs a writable /tmp"
    seccomp = rlvr.get("seccompProfile", pod["seccompProfile"])["type"]
    assert seccomp == ("Unconfined" if variant == "sandbox-bwrap" else "RuntimeDefault")


def test_the_pods_have_no_kubernetes_api_token() -> None:
    resources = RENDERED["base"]
    assert one(resources, "ServiceAccount", "rlvr")["automountServiceAccountToken"] is False
    assert pod_spec(resources)["serviceAccountName"] == "rlvr"
    assert pod_spec(resources)["automountServiceAccountToken"] is False


@pytest.mark.parametrize("variant", ALL)
def test_the_settings_are_real_and_start_the_service(
    variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every RLVR_* variable the pod gets is a setting of the README's table, and together they validate."""
    from service.settings import FIELDS, Settings

    env = environment(RENDERED[variant])
    assert set(env) <= {s.env for s in FIELDS}, set(env) - {s.env for s in FIELDS}
    tokens = tmp_path / "tokens"
    tokens.write_text("a-token\n")
    env["RLVR_API_TOKENS_FILE"] = str(tokens)  # the Secret's file, which exists only in the pod
    for name in [name for name in os.environ if name.startswith("RLVR_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.host == "0.0.0.0"
    backends = {"base": "none", "sandbox-dind": "docker", "sandbox-bwrap": "bubblewrap"}
    assert settings.sandbox.backend == backends[variant]


@pytest.mark.parametrize(
    ("variant", "runs_sandboxes"),
    [
        pytest.param("base", "rlvr", id="base"),
        pytest.param("sandbox-dind", "dind", id="sandbox-dind"),
        pytest.param("sandbox-bwrap", "rlvr", id="sandbox-bwrap"),
    ],
)
def test_pools_follow_the_cpu_limits(variant: str, runs_sandboxes: str) -> None:
    """The default "cores" is the node's CPUs in a pod: both pools are sized from their container's CPU limit."""
    resources = RENDERED[variant]
    refs = {var["name"]: var["valueFrom"]["resourceFieldRef"] for var in container(resources)["env"]}
    assert refs["RLVR_WORKERS"]["containerName"] == "rlvr"
    assert refs["RLVR_SANDBOX_POOL_SIZE"]["containerName"] == runs_sandboxes
    assert {ref["resource"] for ref in refs.values()} == {"limits.cpu"}


@pytest.mark.parametrize("variant", ALL)
def test_the_token_file_is_the_mounted_secret(variant: str) -> None:
    """A directory mount (no subPath: the kubelet then updates it in place) holding the file the service reads."""
    resources = RENDERED[variant]
    token_file = Path(environment(resources)["RLVR_API_TOKENS_FILE"])
    volume = next(v for v in pod_spec(resources)["volumes"] if "secret" in v)
    mount = next(m for m in container(resources)["volumeMounts"] if m["name"] == volume["name"])
    assert "subPath" not in mount and mount["readOnly"] is True
    assert token_file.parent == Path(mount["mountPath"])
    example = one(load_all(BASE / "secret.example.yaml"), "Secret")
    assert volume["secret"]["secretName"] == example["metadata"]["name"]
    assert token_file.name in example["stringData"]
    assert "placeholder" in example["stringData"][token_file.name].lower()


def test_the_dind_sidecar() -> None:
    resources = RENDERED["sandbox-dind"]
    spec = pod_spec(resources)
    dind = container(resources, "dind")
    assert dind in spec["initContainers"] and dind["restartPolicy"] == "Always", "a native sidecar"
    assert dind["securityContext"]["privileged"] is True and "startupProbe" in dind
    # The engine's socket lies on a volume both containers mount, and only the service's group may use it.
    env = environment(resources)
    socket = Path(env["RLVR_SANDBOX_DOCKER_BASE_URL"].removeprefix("unix://"))
    sidecar_mounts = {m["mountPath"]: m["name"] for m in dind["volumeMounts"]}
    service_mounts = {m["mountPath"]: m["name"] for m in container(resources)["volumeMounts"]}
    assert sidecar_mounts[str(socket.parent)] == service_mounts[str(socket.parent)]
    dind_env = {v["name"]: v["value"] for v in dind["env"]}
    assert dind_env["DOCKER_HOST"] == env["RLVR_SANDBOX_DOCKER_BASE_URL"]
    assert int(dind_env["RLVR_DIND_SOCKET_GID"]) == spec["securityContext"]["runAsGroup"]
    assert dind_env["RLVR_DIND_IMAGE"] == env["RLVR_SANDBOX_IMAGE"]
    assert "/var/lib/docker" in sidecar_mounts


def test_the_bwrap_container_may_make_namespaces() -> None:
    resources = RENDERED["sandbox-bwrap"]
    assert pod_spec(resources)["hostUsers"] is False
    context = container(resources)["securityContext"]
    assert context["procMount"] == "Unmasked"
    assert context["appArmorProfile"]["type"] == "Unconfined"
    assert context["seccompProfile"]["type"] == "Unconfined"
    assert container(resources)["image"] != container(RENDERED["base"])["image"], "the image with bwrap"


def test_the_service_monitor_scrapes_each_pod_once() -> None:
    monitor = one(load_all(K8S / "monitoring" / "servicemonitor.yaml"), "ServiceMonitor")
    services = [r for r in RENDERED["base"] if r["kind"] == "Service"]
    chosen = [s for s in services if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
    assert [s["metadata"]["name"] for s in chosen] == ["rlvr"]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in chosen[0]["spec"]["ports"]]
