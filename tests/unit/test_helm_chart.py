"""The Helm chart, rendered and linted offline by helm-python-sdk (Helm's Go SDK as a C
library: no helm binary, no cluster), with the default values and a production-like file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

from tests.settings_env import unknown_settings

CHART = Path(__file__).parents[2] / "charts" / "justice-exchange"
PRODUCTION = CHART / "ci" / "production-values.yaml"
GRPC_SERVICES = ("reports", "evidence", "access", "audit", "exchange", "custody", "fines")
WORKERS = ("relay", "inbound")
SECRET_VALUES = (
    "databaseSecretName",
    "natsSecretName",
    "s3SecretName",
    "tlsSecretName",
    "signingSecretName",
    "signingKeysSecretName",
    "envelopeKeysSecretName",
    "serviceTlsSecretName",
    "auditCheckpointKeySecretName",
    "signingCrlSecretName",
)
# The official NATS chart is an optional dependency (nats.enabled), fetched by
# `helm dependency build` only where it is wanted; lint notes it is not vendored.
MISSING_OPTIONAL_DEPENDENCY = "chart directory is missing these dependencies: nats"


def production_values() -> dict[str, Any]:
    return helm.values_from_yaml(PRODUCTION.read_text())


@pytest.fixture(scope="module")
def chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render(chart: helm.Chart, values: dict[str, Any] | None) -> list[dict[str, Any]]:
    rendered = chart.render(values, name="justice", namespace="justice", is_install=True)
    manifests = []
    for path, text in rendered.items():
        if not text.strip() or path.endswith("NOTES.txt"):
            continue
        # One resource per template file.
        assert "\n---" not in text, f"{path} renders more than one document"
        manifests.append(helm.values_from_yaml(text))
    return manifests


def merged(chart: helm.Chart, values: dict[str, Any] | None) -> dict[str, Any]:
    return chart.merge_values(values or {})


def of_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def pod_specs(manifests: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (m["metadata"]["name"], m["spec"]["template"]["spec"])
        for m in manifests
        if m["kind"] in ("Deployment", "Job")
    ]


VALUES = pytest.mark.parametrize(
    "values", [None, production_values()], ids=["default", "production"]
)


@VALUES
def test_lint_finds_nothing_but_the_unvendored_optional_dependency(
    values: dict[str, Any] | None,
) -> None:
    report = helm.lint(CHART, values, kube_version="v1.30.0")
    problems = [
        m
        for m in report["messages"]
        if m["severity"] >= 2 and m["error"] != MISSING_OPTIONAL_DEPENDENCY
    ]
    assert problems == []
    assert report["errors"] in ([], [MISSING_OPTIONAL_DEPENDENCY])


@VALUES
def test_every_component_has_its_deployment_with_grpc_probes(
    chart: helm.Chart, values: dict[str, Any] | None
) -> None:
    manifests = render(chart, values)
    deployments = of_kind(manifests, "Deployment")
    services = of_kind(manifests, "Service")
    for component in GRPC_SERVICES + WORKERS:
        name = f"justice-justice-exchange-{component}"
        assert name in deployments, f"no Deployment for {component}"
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["grpc"]["service"] == ""
        assert container["livenessProbe"]["grpc"]["service"] == "liveness"
        assert container["startupProbe"]["grpc"]["port"] == merged(chart, values)["probePort"]
        assert container["resources"]["requests"]
        if component in GRPC_SERVICES:
            assert container["args"] == ["serve", "--service", component]
            assert name in services
            pdb = of_kind(manifests, "PodDisruptionBudget")
            assert name in pdb
    hpas = of_kind(manifests, "HorizontalPodAutoscaler")
    assert len(hpas) == (len(GRPC_SERVICES) if merged(chart, values)["autoscalingEnabled"] else 0)


@VALUES
def test_nothing_runs_as_root_or_writes_its_root_filesystem(
    chart: helm.Chart, values: dict[str, Any] | None
) -> None:
    specs = pod_specs(render(chart, values))
    assert len(specs) == len(GRPC_SERVICES) + len(WORKERS) + 2  # and the two hook Jobs
    for name, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            assert not container["image"].endswith(":latest"), name


@VALUES
def test_every_secret_name_comes_from_values(
    chart: helm.Chart, values: dict[str, Any] | None
) -> None:
    manifests = render(chart, values)
    assert not of_kind(manifests, "Secret"), "the chart must never carry a secret"
    allowed = {merged(chart, values)[key] for key in SECRET_VALUES} - {""}
    referenced = set()
    for _, spec in pod_specs(manifests):
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                referenced.add(volume["secret"]["secretName"])
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
            for source in container.get("envFrom", []):
                assert "secretRef" not in source
    assert referenced
    assert referenced <= allowed


@VALUES
def test_no_namespace_is_hard_coded(chart: helm.Chart, values: dict[str, Any] | None) -> None:
    for manifest in render(chart, values):
        assert "namespace" not in manifest["metadata"], manifest["metadata"]["name"]


def test_production_values_reach_the_manifests(chart: helm.Chart) -> None:
    manifests = render(chart, production_values())
    settings = next(iter(of_kind(manifests, "ConfigMap").values()))["data"]
    assert settings["JUSTICE_PRODUCTION"] == "true"
    assert settings["JUSTICE_PKCS11_MODULE"] == "/opt/hsm/lib/libcs_pkcs11_R3.so"
    assert settings["JUSTICE_AUDIT__BATCH_MAX"] == "2000"
    deployments = of_kind(manifests, "Deployment")
    # Autoscaled services leave their replica count to the HPA.
    assert "replicas" not in deployments["justice-justice-exchange-reports"]["spec"]
    assert deployments["justice-justice-exchange-relay"]["spec"]["replicas"] == 1
    policy = of_kind(manifests, "NetworkPolicy")["justice-justice-exchange-grpc"]
    gateway = policy["spec"]["ingress"][0]["from"][0]
    assert gateway["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "gateway"}


@pytest.mark.parametrize(
    ("values", "refused"),
    [
        ({"imageTag": "latest"}, "imageTag"),
        ({"databaseSecretName": ""}, "databaseSecretName"),
        ({"keyStore": "pkcs11", "pkcs11Module": ""}, "pkcs11Module"),
        ({"extraSettings": {"DATABASE_URL": "x"}}, "DATABASE_URL"),
    ],
)
def test_the_schema_refuses_bad_values(
    chart: helm.Chart, values: dict[str, Any], refused: str
) -> None:
    with pytest.raises(helm.HelmError, match=refused):
        chart.validate_schema(values)


@VALUES
def test_each_service_finds_its_peers_and_presents_the_service_certificate(
    chart: helm.Chart, values: dict[str, Any] | None
) -> None:
    manifests = render(chart, values)
    settings = next(iter(of_kind(manifests, "ConfigMap").values()))["data"]
    services = of_kind(manifests, "Service")
    port = merged(chart, values)["grpcPort"]
    for peer in ("reports", "evidence", "access"):
        host, _, at = settings[f"JUSTICE_{peer.upper()}_ADDRESS"].partition(":")
        assert host in services, f"{peer}'s address names no Service of the chart"
        assert services[host]["spec"]["selector"]["app.kubernetes.io/component"] == peer
        assert int(at) == port
    assert settings["JUSTICE_SERVICE_CERT"] == "/etc/justice/service/tls.crt"
    for component in GRPC_SERVICES:
        spec = of_kind(manifests, "Deployment")[f"justice-justice-exchange-{component}"]
        pod = spec["spec"]["template"]["spec"]
        mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert {"/etc/justice/service", "/etc/justice/pki/envelope"} <= mounts, component


def test_timestamps_revocation_and_checkpoint_key_come_from_named_secrets(
    chart: helm.Chart,
) -> None:
    values = {
        **production_values(),
        "tsaUrl": "https://tsa.justice.internal/rfc3161",
        "signingCrlSecretName": "prod-justice-crl",
        "auditCheckpointKeySecretName": "prod-justice-checkpoint",
    }
    manifests = render(chart, values)
    settings = next(iter(of_kind(manifests, "ConfigMap").values()))["data"]
    assert settings["JUSTICE_TSA_URL"] == "https://tsa.justice.internal/rfc3161"
    assert settings["JUSTICE_SIGNING_CRL"] == "/etc/justice/revocation/crl.pem"
    assert settings["JUSTICE_AUDIT__CHECKPOINT_KEY"] == "/etc/justice/audit/checkpoint.key"
    pod = of_kind(manifests, "Deployment")["justice-justice-exchange-audit"]["spec"]["template"]
    secrets = {v["secret"]["secretName"] for v in pod["spec"]["volumes"] if "secret" in v}
    assert {"prod-justice-crl", "prod-justice-checkpoint"} <= secrets


def _environment_names(manifests: list[dict[str, Any]]) -> list[str]:
    names = []
    for config in of_kind(manifests, "ConfigMap").values():
        names += list(config.get("data") or {})
    for _, spec in pod_specs(manifests):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            names += [variable["name"] for variable in container.get("env", [])]
    return names


@VALUES
def test_every_variable_the_chart_sets_is_a_setting(
    chart: helm.Chart, values: dict[str, Any] | None
) -> None:
    names = _environment_names(render(chart, values))
    assert "JUSTICE_EVIDENCE__BUCKET" in names
    assert unknown_settings(names) == []
