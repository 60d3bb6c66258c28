"""The Kubernetes base (deploy/kubernetes/base) as the API server and a user would meet it.

Every object of every resource file, of the example files, and of ``kubectl kustomize``'s output is
validated, strictly (an unknown field is an error), against the OpenAPI schemas of one Kubernetes
version shipped by kubernetes-validate. The Prometheus Operator's kinds, which those schemas do not
know, are checked by hand (their rules in test_prometheusrule.py). The rest are the mistakes that
pass a schema and break a rollout: probes on ports that do not exist, selectors that select
nothing, settings the program does not read, secrets written in plain text.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError

from tests.unit.deploy.deployfiles import (
    BASE,
    IMAGE_UID,
    example_files,
    is_secret,
    kustomization,
    kustomize_build,
    manifest_files,
    objects,
    read_env_file,
    settings,
)

KUBERNETES_VERSION = "1.33.0"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
SECRET_NAME = "aftercare-secrets"
WORKLOAD_KINDS = {"StatefulSet", "Deployment", "Job"}
COMPONENTS = {"worker", "senders", "preferences-api"}

SOURCE_OBJECTS = list(objects([*manifest_files(), *example_files()]))


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    return kustomize_build()


def config() -> dict[str, str]:
    (generator,) = kustomization()["configMapGenerator"]
    return {k: v for name in generator["envs"] for k, v in read_env_file(BASE / name).items()}


def source_objects(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in objects(manifest_files()) if doc["kind"] == kind]


def workloads() -> list[dict[str, Any]]:
    return [doc for _, doc in objects(manifest_files()) if doc["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def by_component(component: str) -> dict[str, Any]:
    (workload,) = [
        w
        for w in workloads()
        if w["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    return workload


def env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in container.get("env", [])}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions In/NotIn/Exists) against some labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


# -- schemas --------------------------------------------------------------------------------------


def validate(doc: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except jsonschema.ValidationError as error:  # kubernetes_validate's own is a subclass
        path = ".".join(str(p) for p in error.path)
        pytest.fail(f"{doc['kind']} {doc['metadata']['name']}: {path}: {error.message}")


@pytest.mark.parametrize(
    "doc",
    [doc for _, doc in SOURCE_OBJECTS if doc["kind"] not in CRD_KINDS],
    ids=[where for where, doc in SOURCE_OBJECTS if doc["kind"] not in CRD_KINDS],
)
def test_every_object_is_valid_for_the_pinned_kubernetes(doc: dict[str, Any]) -> None:
    validate(doc)


def test_the_built_base_is_valid_for_the_pinned_kubernetes(built: list[dict[str, Any]]) -> None:
    kinds = {doc["kind"] for doc in built}

    assert {"StatefulSet", "Deployment", "Job", "ConfigMap", "PodDisruptionBudget"} <= kinds
    for doc in built:
        if doc["kind"] not in CRD_KINDS:
            validate(doc)


def test_the_pinned_kubernetes_rejects_an_unknown_field() -> None:
    (statefulset,) = source_objects("StatefulSet")
    broken = {**statefulset, "spec": {**statefulset["spec"], "replica": 2}}

    with pytest.raises(jsonschema.ValidationError, match="replica"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_operator_kinds_are_unknown_to_the_schemas_so_they_are_checked_by_hand() -> None:
    for doc in [*source_objects("ServiceMonitor"), *source_objects("PrometheusRule")]:
        with pytest.raises(SchemaNotFoundError):
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_servicemonitor_has_what_the_operator_requires() -> None:
    (monitor,) = source_objects("ServiceMonitor")

    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    assert monitor["spec"]["selector"]
    assert monitor["spec"]["endpoints"]
    for endpoint in monitor["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
        assert endpoint["port"]
        assert endpoint.get("path", "/metrics") == "/metrics"


# -- the kustomization ----------------------------------------------------------------------------


def test_every_manifest_beside_the_kustomization_is_a_resource_or_an_example() -> None:
    listed = {path.name for path in manifest_files()}
    examples = {path.name for path in example_files()}
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}

    assert all((BASE / name).is_file() for name in listed)
    assert present == listed | examples
    assert "secret.example.yaml" in examples  # the user creates the Secret; it is never applied


def test_the_built_base_sets_the_image_and_the_config_hash(built: list[dict[str, Any]]) -> None:
    (config_map,) = [doc for doc in built if doc["kind"] == "ConfigMap"]
    built_workloads = [doc for doc in built if doc["kind"] in WORKLOAD_KINDS]
    (image,) = kustomization()["images"]

    assert config_map["metadata"]["name"].startswith("aftercare-config-")
    assert config_map["data"] == config()
    for workload in built_workloads:
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert container["image"] == f"{image['newName']}:{image['newTag']}"
            refs = [e["configMapRef"]["name"] for e in container["envFrom"]]
            assert refs == [config_map["metadata"]["name"]], workload["metadata"]["name"]


def test_every_object_is_labelled_as_aftercare(built: list[dict[str, Any]]) -> None:
    for doc in built:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "aftercare", doc["kind"]
    for workload in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "aftercare"
        assert (
            labels["app.kubernetes.io/component"]
            == (workload["metadata"]["labels"]["app.kubernetes.io/component"])
        )


# -- pods -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_every_probe_port_is_a_container_port(workload: dict[str, Any]) -> None:
    for container in containers(workload):
        ports = {p["containerPort"] for p in container.get("ports", [])}
        names = {p["name"] for p in container.get("ports", []) if "name" in p}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe in container:
                port = container[probe]["httpGet"]["port"]
                assert port in (names if isinstance(port, str) else ports), (
                    f"{workload['metadata']['name']}/{container['name']} {probe} port {port!r}"
                )


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_the_long_running_processes_have_all_three_probes_on_the_health_pages(
    component: str,
) -> None:
    (container,) = containers(by_component(component))
    setting = {
        "worker": "AFTERCARE_WORKER_PORT",
        "senders": "AFTERCARE_SENDERS_PORT",
        "preferences-api": "AFTERCARE_PREFERENCES_PORT",
    }[component]
    (port,) = container["ports"]

    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert str(port["containerPort"]) == config()[setting]
    assert env(container)["AFTERCARE_BIND_ADDRESS"]["value"] == "0.0.0.0"


def test_the_worker_is_a_statefulset_with_static_membership_and_its_own_state() -> None:
    (statefulset,) = source_objects("StatefulSet")
    spec = statefulset["spec"]
    (container,) = containers(statefulset)
    variables = env(container)
    (claim,) = spec["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    (headless,) = [
        s for s in source_objects("Service") if s["metadata"]["name"] == "aftercare-worker"
    ]

    assert container["args"] == ["worker"]
    assert variables["AFTERCARE_INSTANCE_ID"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.name"}
    }
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == headless["metadata"]["name"]
    assert headless["spec"]["clusterIP"] == "None"
    state_dir = variables["AFTERCARE_STATE_DIR"]["value"]
    assert state_dir.startswith(mounts[claim["metadata"]["name"]].rstrip("/") + "/")
    # Long enough to commit and flush after SIGTERM, and to outlast the session timeout.
    grace = spec["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= int(config()["AFTERCARE_SESSION_TIMEOUT_SECONDS"]) >= 10
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_replicas_do_not_exceed_the_partitions_that_share_the_load() -> None:
    worker, senders = by_component("worker"), by_component("senders")

    assert worker["spec"]["replicas"] <= int(config()["AFTERCARE_INPUT_PARTITIONS"])
    assert senders["spec"]["replicas"] <= int(config()["AFTERCARE_OUTPUT_PARTITIONS"])


@pytest.mark.parametrize("workload", workloads(), ids=lambda w: w["metadata"]["name"])
def test_every_pod_runs_as_the_image_user_on_a_read_only_root(workload: dict[str, Any]) -> None:
    spec = pod_spec(workload)
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    claims = {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}

    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == IMAGE_UID
    assert spec["automountServiceAccountToken"] is False
    for container in containers(workload):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]
        # AFTERCARE_HOME is writable: an emptyDir or the worker's own volume.
        home = env(container)["AFTERCARE_HOME"]["value"]
        assert mounts[home] in claims or "emptyDir" in volumes[mounts[home]]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])


# -- selectors ------------------------------------------------------------------------------------


def pod_labels() -> dict[str, dict[str, str]]:
    return {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"] for w in workloads()}


@pytest.mark.parametrize(
    "budget", source_objects("PodDisruptionBudget"), ids=lambda b: b["metadata"]["name"]
)
def test_every_disruption_budget_selects_the_pods_of_one_workload(budget: dict[str, Any]) -> None:
    selected = [
        name for name, labels in pod_labels().items() if selects(budget["spec"]["selector"], labels)
    ]

    assert len(selected) == 1, f"{budget['metadata']['name']} selects {selected}"
    assert budget["apiVersion"] == "policy/v1"


def test_worker_senders_and_preferences_each_have_a_disruption_budget() -> None:
    covered = {
        labels["app.kubernetes.io/component"]
        for budget in source_objects("PodDisruptionBudget")
        for labels in pod_labels().values()
        if selects(budget["spec"]["selector"], labels)
    }

    assert covered == COMPONENTS


@pytest.mark.parametrize("service", source_objects("Service"), ids=lambda s: s["metadata"]["name"])
def test_every_service_selects_a_workload_and_targets_a_named_port(service: dict[str, Any]) -> None:
    selector = {"matchLabels": service["spec"]["selector"]}
    (workload,) = [
        w for w in workloads() if selects(selector, w["spec"]["template"]["metadata"]["labels"])
    ]
    port_names = {p.get("name") for c in containers(workload) for p in c.get("ports", [])}

    for port in service["spec"]["ports"]:
        assert port["targetPort"] in port_names, f"{service['metadata']['name']} {port}"


def test_the_servicemonitor_scrapes_the_worker_the_senders_and_the_preferences_service() -> None:
    (monitor,) = source_objects("ServiceMonitor")
    endpoint_ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    scraped = [
        s
        for s in source_objects("Service")
        if selects(monitor["spec"]["selector"], s["metadata"]["labels"])
    ]
    components = {s["metadata"]["labels"]["app.kubernetes.io/component"] for s in scraped}

    assert components == COMPONENTS
    for service in scraped:
        names = {p["name"] for p in service["spec"]["ports"]}
        assert endpoint_ports <= names, service["metadata"]["name"]
        # The job label is the Service's name: AftercareTargetDown matches job=~"aftercare-.*".
        assert service["metadata"]["name"].startswith("aftercare-")


# -- settings and secrets -------------------------------------------------------------------------


def test_every_variable_the_manifests_set_is_a_setting_of_aftercare() -> None:
    known = set(settings())
    used = {name for name in config()} | {
        name for w in workloads() for c in containers(w) for name in env(c)
    }
    (secret,) = [doc for _, doc in objects(example_files()) if doc["kind"] == "Secret"]

    assert used - known == set(), "not settings of Aftercare (see `aftercare config`)"
    assert set(secret["stringData"]) - known == set()


def test_no_secret_is_written_in_a_manifest_or_the_config_map(built: list[dict[str, Any]]) -> None:
    config_maps = [doc for doc in built if doc["kind"] == "ConfigMap"]
    literal = [
        f"ConfigMap {cm['metadata']['name']}: {name}"
        for cm in config_maps
        for name in cm.get("data", {})
        if is_secret(name)
    ]
    for doc in built:
        if doc["kind"] in WORKLOAD_KINDS:
            for container in doc["spec"]["template"]["spec"]["containers"]:
                literal += [
                    f"{doc['metadata']['name']}/{container['name']}: {name}"
                    for name, item in env(container).items()
                    if is_secret(name) and "secretKeyRef" not in item.get("valueFrom", {})
                ]

    assert literal == [], "secrets belong in the Secret aftercare-secrets"


def test_secret_references_name_keys_the_documented_secret_has() -> None:
    (secret,) = [doc for _, doc in objects(example_files()) if doc["kind"] == "Secret"]
    keys = set(secret["stringData"])

    assert secret["metadata"]["name"] == SECRET_NAME
    for workload in workloads():
        for container in containers(workload):
            for name, item in env(container).items():
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert (ref["name"], ref["key"]) == (SECRET_NAME, name), name
                    assert ref["key"] in keys, f"secret.example.yaml does not document {name}"
            assert all("secretRef" not in source for source in container.get("envFrom", []))


def test_senders_and_preferences_share_the_preferences_key_which_is_required() -> None:
    refs = [
        env(container)["AFTERCARE_PREFERENCES_KEY"]["valueFrom"]["secretKeyRef"]
        for component in ("senders", "preferences-api")
        for container in containers(by_component(component))
    ]

    assert len(refs) == 2
    assert refs[0] == refs[1]
    assert not refs[0].get("optional", False)


def test_the_example_secret_and_ingress_match_the_base() -> None:
    docs = {doc["kind"]: doc for _, doc in objects(example_files())}
    (service,) = [
        s for s in source_objects("Service") if s["metadata"]["name"] == "aftercare-preferences"
    ]
    paths = docs["Ingress"]["spec"]["rules"][0]["http"]["paths"]

    for kind in ("Secret", "Ingress"):
        assert docs[kind]["metadata"]["namespace"] == kustomization()["namespace"]
    assert {p["backend"]["service"]["name"] for p in paths} == {service["metadata"]["name"]}
    assert {p["backend"]["service"]["port"]["name"] for p in paths} <= {
        port["name"] for port in service["spec"]["ports"]
    }
    assert {"/health/live", "/health/ready", "/metrics"}.isdisjoint(p["path"] for p in paths)
    assert docs["Ingress"]["spec"]["rules"][0]["host"] in config()["AFTERCARE_UNSUBSCRIBE_URL"]
