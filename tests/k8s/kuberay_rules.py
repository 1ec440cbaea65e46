"""KubeRay v1.7.0's own rules for the fields we set, rewritten in Python (read, not copied).

Each check names the upstream function it mirrors (ray-operator/controllers/ray/utils/
validation.go unless said otherwise). A RayService or RayJob that breaks one is refused by the
operator at reconcile time (an InvalidRayServiceSpec / InvalidRayJobSpec event, no cluster)
although `kubectl apply` succeeded: these checks are what fails first here instead.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.k8s.kuberay_reconcile import serving_ports

MAX_CLUSTER_NAME = 53  # MaxRayClusterNameLength: 63 - len("-serve-svc")
MAX_RAYSERVICE_NAME = MAX_CLUSTER_NAME - 6  # MaxRayServiceNameLength (GenerateRayClusterName)
MAX_RAYJOB_NAME = MAX_CLUSTER_NAME - 6  # MaxRayJobNameLength
DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
AUTOSCALER_V2_ENV = "RAY_enable_autoscaler_v2"
# Feature gates of KubeRay v1.7.0 (pkg/features/features.go) at their defaults.
GATES = {"RayJobDeletionPolicy": True, "RayServiceIncrementalUpgrade": True,
         "RayClusterNetworkPolicy": False, "RayClusterMTLS": False,
         "RayClusterHistoryServer": False}


def _version(text: str) -> tuple[int, ...] | None:
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(p or 0) for p in match.groups()) if match else None


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env") or []}


def _head_container(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["headGroupSpec"]["template"]["spec"]["containers"][0]


def autoscaling_enabled(spec: dict[str, Any]) -> bool:
    """IsAutoscalingEnabled (utils/util.go)."""
    return bool(spec.get("enableInTreeAutoscaling"))


def autoscaler_v2(spec: dict[str, Any]) -> bool:
    """IsAutoscalingV2Enabled (utils/util.go): only an explicit autoscalerOptions.version."""
    return (spec.get("autoscalerOptions") or {}).get("version") == "v2"


def _group_errors(name: str, group: dict[str, Any]) -> list[str]:
    """validateRayGroupResources and validateRayGroupLabels."""
    errors = []
    params = group.get("rayStartParams") or {}
    if any(params.get(k) for k in ("num-cpus", "num-gpus", "memory", "resources")) \
            and group.get("resources"):
        errors.append(f"{name}: resources set in both rayStartParams and resources")
    if "labels" in params:
        errors.append(f"{name}: rayStartParams['labels'] is not supported")
    for key, value in (group.get("labels") or {}).items():
        if not QUALIFIED_NAME.match(key) or not LABEL_VALUE.match(str(value)):
            errors.append(f"{name}: invalid label {key}={value}")
    if not group["template"]["spec"].get("containers"):
        errors.append(f"{name}: needs at least one container")
    return errors


def _idle_timeout_errors(group: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """validateWorkerGroupIdleTimeout: per-group idleTimeoutSeconds needs autoscaler v2."""
    timeout = group.get("idleTimeoutSeconds")
    if timeout is None:
        return []
    name = group["groupName"]
    if timeout < 0:
        return [f"worker group {name}: idleTimeoutSeconds must be non-negative"]
    env = _env(_head_container(spec)).get(AUTOSCALER_V2_ENV, {}).get("value")
    if autoscaler_v2(spec) or env in ("1", "true"):
        return []
    return [f"worker group {name}: idleTimeoutSeconds is set, but autoscaler v2 is not enabled"]


def _replica_errors(group: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """ValidateRayClusterSpec: min/max replicas of a worker group."""
    name, low, high = group["groupName"], group.get("minReplicas"), group.get("maxReplicas")
    errors = []
    if not autoscaling_enabled(spec) and (low is None or high is None):
        errors.append(f"worker group {name}: minReplicas and maxReplicas are required")
    if (low is not None and low < 0) or (high is not None and high < 0):
        errors.append(f"worker group {name}: negative replicas")
    if low is not None and high is not None and low > high:
        errors.append(f"worker group {name}: minReplicas {low} > maxReplicas {high}")
    if group.get("suspend") and autoscaling_enabled(spec):
        errors.append(f"worker group {name}: cannot be suspended with the autoscaler")
    priority = group.get("priority")  # validateWorkerGroupPriority
    if priority and ((_version(spec.get("rayVersion", "")) or (0,)) < (2, 56)
                     or not autoscaler_v2(spec)):
        errors.append(f"worker group {name}: priority needs Ray >= 2.56 and autoscaler v2")
    return errors


def gcs_ft_enabled(spec: dict[str, Any], annotations: dict[str, str]) -> bool:
    """IsGCSFaultToleranceEnabled (utils/util.go): gcsFaultToleranceOptions, or the annotation
    ray.io/ft-enabled set to "true" in any case; any other value ("1", "yes", "on") is off."""
    value = annotations.get("ray.io/ft-enabled")
    return (value is not None and value.lower() == "true") \
        or spec.get("gcsFaultToleranceOptions") is not None


def _gcs_ft_errors(spec: dict[str, Any], annotations: dict[str, str]) -> list[str]:
    """ValidateRayClusterSpec's GCS fault tolerance rules and validateGcsFaultToleranceBackend."""
    head, params = _head_container(spec), spec["headGroupSpec"].get("rayStartParams") or {}
    env, ft = _env(head), spec.get("gcsFaultToleranceOptions")
    errors = []
    if annotations.get("ray.io/ft-enabled") and ft is not None:  # any non-empty value
        errors.append("ray.io/ft-enabled and gcsFaultToleranceOptions are both set")
    if not gcs_ft_enabled(spec, annotations) and "RAY_REDIS_ADDRESS" in env:
        errors.append("RAY_REDIS_ADDRESS set without gcsFaultToleranceOptions")
    if ft is not None:
        if params.get("redis-password") or "REDIS_PASSWORD" in env or "RAY_REDIS_ADDRESS" in env:
            errors.append("with gcsFaultToleranceOptions, set Redis only there")
        if annotations.get("ray.io/external-storage-namespace"):
            errors.append("use gcsFaultToleranceOptions.externalStorageNamespace")
        if ft.get("backend", "redis") == "redis" and ft.get("storage") is not None:
            errors.append("gcsFaultToleranceOptions.storage only applies to the rocksdb backend")
    if params.get("redis-username") or "REDIS_USERNAME" in env:
        errors.append("use gcsFaultToleranceOptions.redisUsername")
    return errors


def _autoscaler_errors(spec: dict[str, Any]) -> list[str]:
    """ValidateRayClusterSpec's autoscaler rules."""
    head_env, options = _env(_head_container(spec)), spec.get("autoscalerOptions") or {}
    errors = []
    v2_env = head_env.get(AUTOSCALER_V2_ENV, {}).get("value")
    if not autoscaling_enabled(spec) and v2_env in ("1", "true"):
        errors.append(f"{AUTOSCALER_V2_ENV} set while enableInTreeAutoscaling is false")
    if autoscaling_enabled(spec) and options.get("version") and AUTOSCALER_V2_ENV in head_env:
        errors.append(f"both autoscalerOptions.version and {AUTOSCALER_V2_ENV} are set")
    if autoscaling_enabled(spec) and autoscaler_v2(spec):
        templates = [spec["headGroupSpec"]["template"]] + [
            g["template"] for g in spec.get("workerGroupSpecs") or []]
        if any(t["spec"].get("restartPolicy", "Never") != "Never" for t in templates):
            errors.append("restartPolicy must be Never or unset with autoscaler v2")
    if (options.get("idleTimeoutSeconds") or 0) < 0:
        errors.append("autoscalerOptions.idleTimeoutSeconds must be non-negative")
    if any(e["name"] == "KUBERAY_GEN_AUTOSCALER_START_CMD" for e in options.get("env") or []):
        errors.append("autoscalerOptions.env must not set KUBERAY_GEN_AUTOSCALER_START_CMD")
    return errors


def _auth_and_gate_errors(spec: dict[str, Any]) -> list[str]:
    """ValidateRayClusterSpec: token auth needs rayVersion >= 2.52 (K8s auth >= 2.55); the
    alpha features (networkPolicy, tlsOptions, historyServerOptions) need their gates."""
    errors, auth = [], spec.get("authOptions") or {}
    version = _version(spec.get("rayVersion", ""))
    if auth.get("mode") == "token" and (version is None or version < (2, 52)):
        errors.append("authOptions.mode token needs rayVersion >= 2.52.0")
    if auth.get("enableK8sTokenAuth") and (auth.get("mode") != "token" or version is None
                                           or version < (2, 55) or auth.get("secretName")):
        errors.append("enableK8sTokenAuth needs mode token, Ray >= 2.55 and no secretName")
    for field, gate in (("networkPolicy", "RayClusterNetworkPolicy"),
                        ("tlsOptions", "RayClusterMTLS"),
                        ("historyServerOptions", "RayClusterHistoryServer")):
        if spec.get(field) is not None and not GATES[gate]:
            errors.append(f"spec.{field} needs the {gate} feature gate (off by default)")
    return errors


def cluster_errors(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> list[str]:
    """ValidateRayClusterSpec."""
    annotations = annotations or {}
    errors = _group_errors("head", spec["headGroupSpec"])
    for group in spec.get("workerGroupSpecs") or []:
        errors += _group_errors(group["groupName"], group)
        errors += _replica_errors(group, spec)
        errors += _idle_timeout_errors(group, spec)
    return (errors + _gcs_ft_errors(spec, annotations) + _autoscaler_errors(spec)
            + _auth_and_gate_errors(spec))


def _name_errors(meta: dict[str, Any], limit: int, kind: str) -> list[str]:
    """ValidateRayServiceMetadata / ValidateRayJobMetadata."""
    name = meta["name"]
    errors = [] if DNS1035.match(name) else [f"{kind} name {name!r} is not a DNS-1035 label"]
    return errors + ([f"{kind} name longer than {limit}"] if len(name) > limit else [])


def _initializing_timeout_errors(annotations: dict[str, str]) -> list[str]:
    """validateInitializingTimeout: ray.io/initializing-timeout is a positive duration."""
    value = annotations.get("ray.io/initializing-timeout")
    if not value:
        return []
    ok = re.fullmatch(r"([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+", value) or value.isdigit()
    return [] if ok and not re.fullmatch(r"0+(\D.*)?", value) else [
        f"ray.io/initializing-timeout {value!r} is not a positive duration"]


def service_errors(doc: dict[str, Any]) -> list[str]:
    """ValidateRayServiceMetadata + ValidateRayServiceSpec (+ ValidateClusterUpgradeOptions)."""
    meta, spec = doc["metadata"], doc["spec"]
    annotations = meta.get("annotations") or {}
    cluster = spec["rayClusterConfig"]
    errors = _name_errors(meta, MAX_RAYSERVICE_NAME, "RayService")
    errors += _initializing_timeout_errors(annotations)
    if (cluster.get("authOptions") or {}).get("enableK8sTokenAuth"):
        errors.append("K8s token auth is not supported for RayService")
    errors += cluster_errors(cluster, annotations)
    if ((cluster["headGroupSpec"].get("headService") or {}).get("metadata") or {}).get("name"):
        errors.append("headGroupSpec.headService.metadata.name must not be set")
    upgrade = (spec.get("upgradeStrategy") or {}).get("type")
    if upgrade not in (None, "None", "NewCluster", "NewClusterWithIncrementalUpgrade"):
        errors.append(f"upgradeStrategy.type {upgrade!r} is invalid")
    if upgrade == "NewClusterWithIncrementalUpgrade":
        options = spec["upgradeStrategy"].get("clusterUpgradeOptions") or {}
        if not autoscaling_enabled(cluster) or not options.get("gatewayClassName") \
                or not options.get("intervalSeconds"):
            errors.append("NewClusterWithIncrementalUpgrade needs the autoscaler and options")
    if (spec.get("rayClusterDeletionDelaySeconds") or 0) < 0:
        errors.append("rayClusterDeletionDelaySeconds must be non-negative")
    return errors + serve_service_errors(spec)


def serve_service_errors(spec: dict[str, Any]) -> list[str]:
    """BuildServeService (controllers/ray/common/service.go): the Serve Service needs a port
    named `serve` (head container or spec.serveService); KubeRay replaces any selector of
    spec.serveService with its own (the serving cluster's pods labelled ray.io/serve=true) and
    keeps only the ports named like the head's serving ports (`serve`, `serve-*`)."""
    errors = []
    ports = _head_container(spec["rayClusterConfig"]).get("ports") or []
    custom = spec.get("serveService") or {}
    named = {p.get("name"): p["containerPort"] for p in ports}
    # getServicePorts adds serve=8000 by default unless another port name holds 8000
    if "serve" not in named and 8000 in named.values() and not custom:
        errors.append("the head's port 8000 is not named `serve`: no Serve Service is made")
    if (custom.get("spec") or {}).get("selector"):
        errors.append("spec.serveService.spec.selector is ignored by KubeRay (BuildServeService)")
    kept = {p["name"] for p in serving_ports({"spec": spec})}
    dropped = [p.get("name") for p in (custom.get("spec") or {}).get("ports") or []
               if kept and p.get("name") not in kept]
    if dropped:
        errors.append(f"spec.serveService ports {dropped} are dropped by KubeRay: only ports "
                      f"named like the head's serving ports ({sorted(kept)}) are kept")
    return errors


def _deletion_rule_errors(spec: dict[str, Any]) -> list[str]:
    """validateDeletionConfiguration, validateDeletionRules, validateDeletionCondition and
    validateTTLConsistency."""
    shutdown, ttl = spec.get("shutdownAfterJobFinishes", False), spec.get("ttlSecondsAfterFinished", 0)
    errors = [] if ttl >= 0 else ["ttlSecondsAfterFinished must be non-negative"]
    if not shutdown and ttl > 0:
        errors.append("ttlSecondsAfterFinished needs shutdownAfterJobFinishes")
    strategy = spec.get("deletionStrategy")
    if strategy is None:
        return errors
    if not GATES["RayJobDeletionPolicy"]:
        return errors + ["deletionStrategy needs the RayJobDeletionPolicy gate"]
    rules, legacy = strategy.get("deletionRules") or [], ("onSuccess" in strategy or "onFailure" in strategy)
    if rules and shutdown:
        errors.append("shutdownAfterJobFinishes and deletionRules are mutually exclusive")
    if rules and legacy:
        errors.append("legacy onSuccess/onFailure and deletionRules together")
    if not rules and not ("onSuccess" in strategy and "onFailure" in strategy):
        errors.append("deletionStrategy needs both onSuccess and onFailure, or deletionRules")
    seen: dict[tuple[str, str], dict[str, int]] = {}
    autoscaling = autoscaling_enabled(spec.get("rayClusterSpec") or {})
    for i, rule in enumerate(rules):
        cond = rule.get("condition") or {}
        keys = [k for k in ("jobStatus", "jobDeploymentStatus") if k in cond]
        if len(keys) != 1:
            errors.append(f"deletionRules[{i}]: exactly one of jobStatus, jobDeploymentStatus")
            continue
        if cond.get("ttlSeconds", 0) < 0:
            errors.append(f"deletionRules[{i}]: ttlSeconds must be non-negative")
            continue
        if autoscaling and rule["policy"] == "DeleteWorkers":
            errors.append(f"deletionRules[{i}]: DeleteWorkers with autoscaling enabled")
            continue
        ttls = seen.setdefault((keys[0], cond[keys[0]]), {})
        if rule["policy"] in ttls:
            errors.append(f"deletionRules[{i}]: duplicate {rule['policy']} for {cond[keys[0]]}")
            continue
        ttls[rule["policy"]] = cond.get("ttlSeconds", 0)
    for (_, status), ttls in seen.items():  # Workers <= Cluster <= Self
        order = [ttls[p] for p in ("DeleteWorkers", "DeleteCluster", "DeleteSelf") if p in ttls]
        if order != sorted(order):
            errors.append(f"deletion TTLs for {status} must grow Workers <= Cluster <= Self")
    return errors


def job_errors(doc: dict[str, Any]) -> list[str]:
    """ValidateRayJobMetadata + ValidateRayJobSpec."""
    spec = doc["spec"]
    mode = spec.get("submissionMode", "K8sJobMode")
    errors = _name_errors(doc["metadata"], MAX_RAYJOB_NAME, "RayJob")
    if spec.get("suspend") and not spec.get("shutdownAfterJobFinishes"):
        errors.append("a RayJob without shutdownAfterJobFinishes cannot be suspended")
    errors += _deletion_rule_errors(spec)
    if spec.get("rayClusterSpec") is None and not spec.get("clusterSelector"):
        errors.append("one of rayClusterSpec or clusterSelector must be set")
    backoff = spec.get("backoffLimit")
    if mode == "InteractiveMode" and (backoff or 0) > 0:
        errors.append("backoffLimit is incompatible with InteractiveMode")
    if mode == "SidecarMode" and (spec.get("submitterPodTemplate") or spec.get("submitterConfig")):
        errors.append("SidecarMode supports no submitterPodTemplate or submitterConfig")
    if spec.get("submitterPodTemplate") is not None \
            and not spec["submitterPodTemplate"]["spec"].get("containers"):
        errors.append("submitterPodTemplate needs a container (the first is the submitter)")
    cluster = spec.get("rayClusterSpec")
    if cluster is not None:
        if (cluster.get("authOptions") or {}).get("enableK8sTokenAuth"):
            errors.append("K8s token auth is not supported for RayJob")
        errors += cluster_errors(cluster, doc["metadata"].get("annotations") or {})
    try:  # UnmarshalRuntimeEnvYAML
        env = yaml.safe_load(spec.get("runtimeEnvYAML") or "{}")
        if env is not None and not isinstance(env, dict):
            errors.append("runtimeEnvYAML is not a mapping")
    except yaml.YAMLError as exc:
        errors.append(f"runtimeEnvYAML is not YAML: {exc}")
    for field in ("activeDeadlineSeconds", "preRunningDeadlineSeconds"):
        if field in spec and spec[field] <= 0:
            errors.append(f"{field} must be positive")
    if backoff is not None and backoff < 0:
        errors.append("backoffLimit must be non-negative")
    return errors


def kuberay_errors(doc: dict[str, Any]) -> list[str]:
    return service_errors(doc) if doc["kind"] == "RayService" else job_errors(doc)
