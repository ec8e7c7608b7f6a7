"""Every overlay renders with the real kustomize, validates against the Kubernetes schemas and
keeps the deployment policies (resources, probes, non-root, pinned images, Secrets in use,
network policies around every pod); the GPU overlay shares its GPUs by time-slicing."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from switchboard.settings import Settings, load_settings
from tests.k8s.manifests import (
    K8S,
    OVERLAYS,
    ROOT,
    Obj,
    containers,
    name_of,
    pod_templates,
    render,
    selects,
    validate,
)

NAMESPACE = "switchboard"
# Objects that belong elsewhere by design: the device plugin reads its time-slicing ConfigMap in
# its own namespace.
OTHER_NAMESPACES = {("ConfigMap", "time-slicing-config"): "gpu-operator"}
# Containers whose root filesystem cannot be read-only, and why (the manifests say so too).
WRITABLE_ROOT = {
    "neo4j": "the entrypoint writes conf/neo4j.conf from NEO4J_* variables at start",
    "localai": "the entrypoint and its backends write scratch files beside the binaries",
}
# Pods a NetworkPolicy may name that are not in the render: Langfuse's, from its Helm chart.
EXTERNAL_PEERS = [{"kubernetes.io/metadata.name": "langfuse"}]


@cache
def rendered(overlay: str) -> tuple[Obj, ...]:
    """The overlay's objects; rendered once per test session."""
    return tuple(render(K8S / "overlays" / overlay))


def objects(overlay: str, kind: str | None = None) -> list[Obj]:
    return [o for o in rendered(overlay) if kind is None or o["kind"] == kind]


def pods(overlay: str) -> list[tuple[Obj, Obj]]:
    return list(pod_templates(list(rendered(overlay))))


def all_containers(overlay: str) -> list[tuple[str, Obj, Obj]]:
    """(workload name, pod spec, container) for every container of the overlay."""
    return [
        (name_of(workload), template["spec"], container)
        for workload, template in pods(overlay)
        for container in containers(template)
    ]


overlays = pytest.mark.parametrize("overlay", OVERLAYS)


@overlays
def test_every_object_validates_against_the_kubernetes_schemas(overlay: str) -> None:
    assert rendered(overlay), "the overlay rendered nothing"
    assert validate(list(rendered(overlay))) == []


def test_a_broken_manifest_fails_validation() -> None:
    """The check that guards the overlays rejects a wrong type, an unknown field and a missing
    required field, each in both Kubernetes versions (so a broken manifest fails CI)."""
    problems = validate(render(ROOT / "tests" / "k8s" / "fixtures" / "broken"))
    assert len(problems) == 6, problems
    text = "\n".join(problems)
    assert "Deployment/broken (k8s 1.30.0) spec.replicas" in text
    assert "Service/broken (k8s 1.30.0) spec.ports.0" in text and "targetPorts" in text
    assert "Pod/broken (k8s 1.30.0) spec.containers.0: 'name' is a required property" in text


def test_an_unknown_kind_fails_validation() -> None:
    typo = {"apiVersion": "apps/v1", "kind": "Deploymnet", "metadata": {"name": "x"}}
    assert validate([typo]) != []


@overlays
def test_every_container_has_requests_and_limits(overlay: str) -> None:
    missing = [
        f"{workload} {c['name']}: {part}.{resource}"
        for workload, _, c in all_containers(overlay)
        for part in ("requests", "limits")
        for resource in ("cpu", "memory")
        if resource not in c.get("resources", {}).get(part, {})
    ]
    assert missing == []


@overlays
def test_every_container_has_liveness_and_readiness_probes(overlay: str) -> None:
    missing = [
        f"{workload} {c['name']}: {probe}"
        for workload, _, c in all_containers(overlay)
        for probe in ("livenessProbe", "readinessProbe")
        if probe not in c
    ]
    assert missing == []


@overlays
def test_probes_name_ports_the_container_opens(overlay: str) -> None:
    wrong = []
    for workload, _, c in all_containers(overlay):
        ports = {p.get("name") for p in c.get("ports", [])} | {
            p["containerPort"] for p in c.get("ports", [])
        }
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            action = c.get(probe, {})
            for kind in ("httpGet", "tcpSocket"):
                if kind in action and action[kind]["port"] not in ports:
                    wrong.append(f"{workload} {c['name']} {probe}: {action[kind]['port']}")
    assert wrong == []


@overlays
def test_switchboard_probes_healthz_and_readyz(overlay: str) -> None:
    for workload, _, c in all_containers(overlay):
        if c["name"] == "switchboard":
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", workload
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", workload


@overlays
def test_every_container_runs_as_non_root_without_privileges(overlay: str) -> None:
    wrong = []
    for workload, pod, c in all_containers(overlay):
        pod_ctx, ctx = pod.get("securityContext", {}), c.get("securityContext", {})
        where = f"{workload} {c['name']}"
        if not ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")):
            wrong.append(f"{where}: runAsNonRoot")
        if ctx.get("runAsUser", pod_ctx.get("runAsUser", 0)) == 0:
            wrong.append(f"{where}: runAsUser must be a non-zero uid")
        if ctx.get("allowPrivilegeEscalation") is not False:
            wrong.append(f"{where}: allowPrivilegeEscalation")
        if ctx.get("privileged"):
            wrong.append(f"{where}: privileged")
        if "ALL" not in ctx.get("capabilities", {}).get("drop", []):
            wrong.append(f"{where}: capabilities.drop ALL")
        if pod_ctx.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            wrong.append(f"{where}: seccompProfile RuntimeDefault")
    assert wrong == []


@overlays
def test_root_filesystems_are_read_only_where_possible(overlay: str) -> None:
    writable = {
        c["name"]
        for _, _, c in all_containers(overlay)
        if not c.get("securityContext", {}).get("readOnlyRootFilesystem")
    }
    assert writable <= set(WRITABLE_ROOT)


@overlays
def test_no_image_is_latest_or_untagged(overlay: str) -> None:
    wrong = []
    for workload, _, c in all_containers(overlay):
        image = c["image"]
        name, _, digest = image.partition("@")
        tag = name.rsplit("/", 1)[-1].partition(":")[2]
        if digest:
            continue
        if not tag or tag == "latest" or not re.search(r"\d", tag):
            wrong.append(f"{workload} {c['name']}: {image}")
    assert wrong == []


def _secret_references(overlay: str) -> set[str]:
    names: set[str] = set()
    for _, template in pods(overlay):
        spec = template["spec"]
        for c in containers(template):
            names |= {e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e}
            names |= {
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in c.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            }
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
            for source in volume.get("projected", {}).get("sources", []):
                if "secret" in source:
                    names.add(source["secret"]["name"])
        names |= {s["name"] for s in spec.get("imagePullSecrets", [])}
    return names


@overlays
def test_every_secret_is_referenced_and_every_reference_exists(overlay: str) -> None:
    defined = {o["metadata"]["name"] for o in objects(overlay, "Secret")}
    used = _secret_references(overlay)
    assert defined, "the overlay has no Secret (the template is missing)"
    assert defined - used == set(), "Secrets nothing uses"
    assert used - defined == set(), "Secrets used but not defined"


@overlays
def test_every_secret_key_read_exists(overlay: str) -> None:
    keys = {
        o["metadata"]["name"]: set(o.get("data", {})) | set(o.get("stringData", {}))
        for o in objects(overlay, "Secret")
    }
    wrong = [
        f"{workload}: {ref['name']}/{ref['key']}"
        for workload, _, c in all_containers(overlay)
        for e in c.get("env", [])
        if (ref := e.get("valueFrom", {}).get("secretKeyRef"))
        and ref["key"] not in keys.get(ref["name"], set())
    ]
    assert wrong == []


def _policies(overlay: str) -> list[Obj]:
    return objects(overlay, "NetworkPolicy")


@overlays
def test_network_policies_deny_by_default(overlay: str) -> None:
    deny = [
        p
        for p in _policies(overlay)
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no default-deny NetworkPolicy for ingress and egress"


@overlays
def test_network_policies_cover_every_pod(overlay: str) -> None:
    """Every pod has a policy of its own (beyond the namespace-wide ones) that opens what it
    serves: a pod no specific policy selects is either unreachable or unaccounted for."""
    specific = [p for p in _policies(overlay) if p["spec"]["podSelector"]]
    uncovered = [
        name_of(workload)
        for workload, template in pods(overlay)
        if not any(
            selects(p["spec"]["podSelector"], template["metadata"]["labels"])
            and "Ingress" in p["spec"]["policyTypes"]
            for p in specific
        )
    ]
    assert uncovered == []


@overlays
def test_network_policy_selectors_match_real_pods(overlay: str) -> None:
    """A selector that matches nothing is a typo that silently opens or closes nothing."""
    labels = [t["metadata"]["labels"] for _, t in pods(overlay)]
    dangling = []
    for policy in _policies(overlay):
        spec = policy["spec"]
        if spec["podSelector"] and not any(selects(spec["podSelector"], lb) for lb in labels):
            dangling.append(f"{name_of(policy)}: podSelector")
        for rule in spec.get("ingress", []) + spec.get("egress", []):
            for peer in rule.get("from", []) + rule.get("to", []):
                if "namespaceSelector" in peer:
                    continue  # another namespace: not in this render
                if "podSelector" in peer and not any(
                    selects(peer["podSelector"], lb) for lb in labels
                ):
                    dangling.append(f"{name_of(policy)}: peer {peer['podSelector']}")
    assert dangling == []


@overlays
def test_services_pdbs_and_autoscalers_point_at_real_workloads(overlay: str) -> None:
    labels = [t["metadata"]["labels"] for _, t in pods(overlay)]
    workloads = {(w["kind"], w["metadata"]["name"]) for w, _ in pods(overlay)}
    wrong = [
        name_of(s)
        for s in objects(overlay, "Service")
        if not any(selects(s["spec"]["selector"], lb) for lb in labels)
    ]
    wrong += [
        name_of(p)
        for p in objects(overlay, "PodDisruptionBudget")
        if not any(selects(p["spec"]["selector"], lb) for lb in labels)
    ]
    wrong += [
        name_of(h)
        for h in objects(overlay, "HorizontalPodAutoscaler")
        if (h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"])
        not in workloads
    ]
    assert wrong == []


@overlays
def test_everything_lands_in_one_namespace(overlay: str) -> None:
    cluster_scoped = {"Namespace"}
    wrong = [
        f"{name_of(o)}: {o['metadata'].get('namespace')}"
        for o in rendered(overlay)
        if o["kind"] not in cluster_scoped
        and o["metadata"].get("namespace")
        != OTHER_NAMESPACES.get((o["kind"], o["metadata"]["name"]), NAMESPACE)
    ]
    assert wrong == []
    assert [o["metadata"]["name"] for o in objects(overlay, "Namespace")] == [NAMESPACE]


@overlays
def test_autoscalers_scale_api_on_cpu_and_workers_on_queue_depth(overlay: str) -> None:
    hpas = {
        h["metadata"]["name"]: h["spec"]["metrics"]
        for h in objects(overlay, "HorizontalPodAutoscaler")
    }
    assert [m["resource"]["name"] for m in hpas["switchboard-api"]] == ["cpu"]
    worker = hpas["switchboard-worker"]
    assert any(m.get("resource", {}).get("name") == "cpu" for m in worker)
    assert any(
        m.get("external", {}).get("metric", {}).get("name") == "switchboard_run_queue_depth"
        for m in worker
    )
    metrics_source = (ROOT / "switchboard" / "metrics.py").read_text()
    assert '"switchboard_run_queue_depth"' in metrics_source


def _switchboard_env(overlay: str, component: str) -> dict[str, str]:
    """The environment the kubelet gives a Switchboard container: envFrom, then env with
    $(VAR) expanded."""
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in rendered(overlay)}
    workload = by_name["Deployment", f"switchboard-{component}"]
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= by_name["ConfigMap", source["configMapRef"]["name"]].get("data", {})
        else:
            secret = by_name["Secret", source["secretRef"]["name"]]
            env |= {k: _b64(v) for k, v in secret.get("data", {}).items()}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), item["value"])
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = _b64(by_name["Secret", ref["name"]]["data"][ref["key"]])
    return env


def _b64(value: str) -> str:
    import base64

    return base64.b64decode(value).decode()


@overlays
@pytest.mark.parametrize("component", ["api", "worker"])
def test_switchboard_settings_load_from_the_rendered_environment(
    overlay: str, component: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every SWITCHBOARD_ variable the pods get names a real setting, and together they load."""
    env = _switchboard_env(overlay, component)
    groups: dict[str, Any] = Settings.model_fields
    unknown = []
    for key in env:
        if not key.startswith("SWITCHBOARD_"):
            continue
        group, _, name = key.removeprefix("SWITCHBOARD_").lower().partition("__")
        annotation = groups[group].annotation if group in groups else None
        if annotation is None or name not in getattr(annotation, "model_fields", {}):
            unknown.append(key)
    assert unknown == []
    for key in [k for k in __import__("os").environ if k.startswith("SWITCHBOARD_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(ROOT / "tests" / "k8s" / "fixtures")  # no .env here
    for key, value in env.items():
        if key.startswith("SWITCHBOARD_"):
            monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.server.host == "0.0.0.0"
    assert settings.runtime.worker is (component == "worker")
    if overlay != "cpu-dev":
        assert settings.llm.backends, "no model backend configured"
        assert settings.local.mode == "off"
    else:
        assert settings.local.mode == "auto" and not settings.llm.backends
    assert settings.redis.url, "Redis must be a server, never the embedded one"
    assert settings.graph.url and settings.retrieval.qdrant_url


def _container(overlay: str, name: str) -> Obj:
    (c,) = [c for _, _, c in all_containers(overlay) if c["name"] == name]
    return c


def test_gpu_overlay_gives_localai_and_ollama_a_gpu_each() -> None:
    for name in ("localai", "ollama"):
        resources = _container("gpu", name)["resources"]
        assert resources["limits"]["nvidia.com/gpu"] == 1
        assert resources["requests"]["nvidia.com/gpu"] == 1
        (workload,) = [w for w, t in pods("gpu") if t["spec"]["containers"][0]["name"] == name]
        spec = workload["spec"]["template"]["spec"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec[
            "tolerations"
        ]
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in spec["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert claims == {f"{name}-models"}
        assert f"{name}-models" in {
            p["metadata"]["name"] for p in objects("gpu", "PersistentVolumeClaim")
        }


def test_gpu_overlay_carries_the_time_slicing_configuration() -> None:
    (config,) = [
        c for c in objects("gpu", "ConfigMap") if c["metadata"]["name"] == "time-slicing-config"
    ]
    (body,) = config["data"].values()
    sharing = yaml.safe_load(body)["sharing"]["timeSlicing"]
    (resource,) = sharing["resources"]
    assert resource["name"] == "nvidia.com/gpu"
    # LocalAI and Ollama must both fit on one GPU: at least two slices per GPU.
    assert resource["replicas"] >= 2
    assert sharing["failRequestsGreaterThanOne"] is True


@pytest.mark.parametrize("overlay", ["cpu-dev", "external"])
def test_only_the_gpu_overlay_asks_for_gpus(overlay: str) -> None:
    assert not [
        c["name"]
        for _, _, c in all_containers(overlay)
        if "nvidia.com/gpu" in c["resources"].get("limits", {})
    ]


def test_external_overlay_is_switchboard_only() -> None:
    names = {w["metadata"]["name"] for w, _ in pods("external")}
    assert names == {"switchboard-api", "switchboard-worker"}


def test_redis_persists_with_aof() -> None:
    args = _container("cpu-dev", "redis")["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert _container("cpu-dev", "redis")["image"].startswith("redis:8.")
