"""Checks of deploy/kubernetes that a schema cannot make: the Prometheus
Operator resources (no schema in kubernetes-validate) by their required
keys, and the references between the manifests.

    python check-manifests.py DEPLOY_KUBERNETES_DIR ALERTS_YML

Prints every problem and exits 1 when there is one.
"""

import pathlib
import sys

import yaml

problems = []


def need(cond, msg):
    if not cond:
        problems.append(msg)
    return cond


def dig(obj, *path):
    for p in path:
        if isinstance(obj, dict) and p in obj:
            obj = obj[p]
        elif isinstance(obj, list) and isinstance(p, int) and p < len(obj):
            obj = obj[p]
        else:
            return None
    return obj


def main():
    root = pathlib.Path(sys.argv[1])
    alerts = yaml.safe_load(pathlib.Path(sys.argv[2]).read_text())
    docs = {}
    for path in sorted(root.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            kind = doc.get("kind")
            name = dig(doc, "metadata", "name")
            need(kind and (name or kind == "Kustomization"), f"{path.name}: kind and metadata.name are required")
            docs.setdefault(kind, []).append((path.name, doc))

    def one(kind):
        found = docs.get(kind, [])
        need(len(found) == 1, f"expected one {kind}, found {len(found)}")
        return found[0][1] if found else {}

    # kustomization.yaml lists files that exist, and every manifest but the
    # adapter's rule (which belongs to the adapter's namespace).
    kust = one("Kustomization")
    listed = set(kust.get("resources", []))
    for f in listed:
        need((root / f).is_file(), f"kustomization.yaml: {f} does not exist")
    for f in root.glob("*.yaml"):
        if f.name not in ("kustomization.yaml", "prometheus-adapter-rules.yaml"):
            need(f.name in listed, f"kustomization.yaml: {f.name} is not listed")

    dep = one("Deployment")
    svc = one("Service")
    cm = next((d for _, d in docs.get("ConfigMap", []) if dig(d, "metadata", "name") == "mosaic-config"), {})
    secret = one("Secret")
    pdb = one("PodDisruptionBudget")
    hpa = one("HorizontalPodAutoscaler")
    sm = one("ServiceMonitor")
    rule = one("PrometheusRule")
    adapter = next((d for _, d in docs.get("ConfigMap", []) if dig(d, "metadata", "name") == "adapter-config"), {})

    pod_labels = dig(dep, "spec", "template", "metadata", "labels") or {}
    need(dig(dep, "spec", "selector", "matchLabels") == pod_labels, "Deployment: selector differs from the pod labels")
    for kind, sel in (("Service", dig(svc, "spec", "selector")), ("PodDisruptionBudget", dig(pdb, "spec", "selector", "matchLabels"))):
        need(sel and all(pod_labels.get(k) == v for k, v in sel.items()), f"{kind}: selector does not match the pods")

    spec = dig(dep, "spec", "template", "spec") or {}
    c = dig(spec, "containers", 0) or {}
    ports = {p.get("name") for p in c.get("ports", [])}
    for p in dig(svc, "spec", "ports") or []:
        need(p.get("targetPort") in ports, f"Service: targetPort {p.get('targetPort')} is no container port")
    env_from = {(next(iter(k for k in e if k.endswith("Ref"))), next(iter(e.values()))["name"]) for e in c.get("envFrom", [])}
    need(("configMapRef", "mosaic-config") in env_from, "Deployment: envFrom lacks the ConfigMap mosaic-config")
    need(("secretRef", dig(secret, "metadata", "name")) in env_from, "Deployment: envFrom lacks the Secret")
    for key in list((cm.get("data") or {})) + list((secret.get("stringData") or {})):
        need(key.startswith("MOSAIC_"), f"settings: {key} is not a MOSAIC_ variable")

    # Probes: readiness /readyz, liveness /healthz, a startup probe.
    need(dig(c, "readinessProbe", "httpGet", "path") == "/readyz", "Deployment: readiness probe is not /readyz")
    need(dig(c, "livenessProbe", "httpGet", "path") == "/healthz", "Deployment: liveness probe is not /healthz")
    need(dig(c, "startupProbe") is not None, "Deployment: no startup probe")
    # Non-root, read-only root file system.
    sc = c.get("securityContext") or {}
    need(sc.get("readOnlyRootFilesystem") is True, "Deployment: root file system is not read-only")
    need(sc.get("runAsNonRoot") is True or dig(spec, "securityContext", "runAsNonRoot") is True, "Deployment: may run as root")
    need(sc.get("allowPrivilegeEscalation") is False, "Deployment: privilege escalation allowed")
    need(all(k in (dig(c, "resources", "requests") or {}) for k in ("cpu", "memory")), "Deployment: cpu/memory requests missing (the HPA's CPU target needs them)")
    # The drain (preStop pause + the request deadline) ends before the kill.
    deadline_s = int((cm.get("data") or {}).get("MOSAIC_REQUEST_TIMEOUT_MS", "30000")) / 1000
    pause_s = dig(c, "lifecycle", "preStop", "sleep", "seconds") or 0
    grace = spec.get("terminationGracePeriodSeconds", 30)
    need(grace > pause_s + deadline_s, f"Deployment: terminationGracePeriodSeconds {grace} is not longer than the drain ({pause_s} s pause + {deadline_s} s deadline)")

    # The seed's autoscaling.
    need(dig(hpa, "apiVersion") == "autoscaling/v2", "HPA: not autoscaling/v2")
    need(dig(hpa, "spec", "scaleTargetRef", "name") == dig(dep, "metadata", "name"), "HPA: does not target the Deployment")
    need((dig(hpa, "spec", "minReplicas"), dig(hpa, "spec", "maxReplicas")) == (10, 500), "HPA: replicas are not 10..500")
    metrics = dig(hpa, "spec", "metrics") or []
    cpu = [m for m in metrics if m.get("type") == "Resource" and dig(m, "resource", "name") == "cpu"]
    need(cpu and dig(cpu[0], "resource", "target", "averageUtilization") == 60, "HPA: CPU target is not 60 %")
    queue = [m for m in metrics if m.get("type") == "Pods" and dig(m, "pods", "metric", "name") == "request_queue_length"]
    need(queue and str(dig(queue[0], "pods", "target", "averageValue")) == "50", "HPA: request_queue_length average is not 50")
    up = dig(hpa, "spec", "behavior", "scaleUp") or {}
    down = dig(hpa, "spec", "behavior", "scaleDown") or {}
    need({"type": "Percent", "value": 100, "periodSeconds": 60} in (up.get("policies") or []), "HPA: scale-up is not 100 % per 60 s")
    need({"type": "Percent", "value": 10, "periodSeconds": 120} in (down.get("policies") or []), "HPA: scale-down is not 10 % per 120 s")
    need(down.get("stabilizationWindowSeconds") == 300, "HPA: scale-down window is not 300 s")
    need("replicas" not in (dep.get("spec") or {}), "Deployment: sets replicas, which the HPA owns")

    # The adapter serves the metric the HPA asks for, from the server's gauge.
    adapter_cfg = yaml.safe_load(dig(adapter, "data", "config.yaml") or "{}") or {}
    served = [r for r in adapter_cfg.get("rules", []) if dig(r, "name", "as") == "request_queue_length"]
    need(served and "request_queue_length" in served[0].get("seriesQuery", ""), "prometheus-adapter: no rule serving request_queue_length")
    need(served and set((dig(served[0], "resources", "overrides") or {})) >= {"namespace", "pod"}, "prometheus-adapter: the rule must map namespace and pod")

    # ServiceMonitor (monitoring.coreos.com/v1): required keys.
    need(dig(sm, "apiVersion") == "monitoring.coreos.com/v1", "ServiceMonitor: apiVersion")
    need(isinstance(dig(sm, "spec", "selector"), dict), "ServiceMonitor: spec.selector is required")
    svc_labels = dig(svc, "metadata", "labels") or {}
    need(all(svc_labels.get(k) == v for k, v in (dig(sm, "spec", "selector", "matchLabels") or {}).items()), "ServiceMonitor: selector does not match the Service")
    eps = dig(sm, "spec", "endpoints") or []
    need(eps, "ServiceMonitor: spec.endpoints is required")
    svc_ports = {p.get("name") for p in dig(svc, "spec", "ports") or []}
    for e in eps:
        need(e.get("port") in svc_ports, f"ServiceMonitor: port {e.get('port')} is no Service port")
        need(e.get("path") == "/metrics", "ServiceMonitor: path is not /metrics")
        ref = e.get("bearerTokenSecret") or {}
        if ref:
            need(ref.get("name") == dig(secret, "metadata", "name") and ref.get("key") in (secret.get("stringData") or {}), "ServiceMonitor: bearerTokenSecret names no key of the Secret")

    # PrometheusRule (monitoring.coreos.com/v1): required keys, and the same
    # rules as deploy/prometheus/alerts.yml.
    need(dig(rule, "apiVersion") == "monitoring.coreos.com/v1", "PrometheusRule: apiVersion")
    groups = dig(rule, "spec", "groups") or []
    need(groups, "PrometheusRule: spec.groups is required")
    for g in groups:
        need(isinstance(g.get("name"), str), "PrometheusRule: a group has no name")
        for r in g.get("rules", []):
            need(isinstance(r.get("expr"), str) and (("alert" in r) ^ ("record" in r)), f"PrometheusRule: rule {r.get('alert') or r.get('record')} needs expr and one of alert/record")
    need(dig(rule, "spec") == alerts, "PrometheusRule: spec differs from deploy/prometheus/alerts.yml")

    for p in problems:
        print(f"check-manifests: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


main()
