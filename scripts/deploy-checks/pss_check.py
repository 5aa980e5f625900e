#!/usr/bin/env python3
"""Check that every pod template in YAML streams meets the Kubernetes "restricted" Pod
Security Standard (https://kubernetes.io/docs/concepts/security/pod-security-standards/):
no host namespaces, ports or hostPath volumes; non-privileged; allowPrivilegeEscalation
false; capabilities drop ALL (add at most NET_BIND_SERVICE); runAsNonRoot; not runAsUser 0;
seccompProfile RuntimeDefault or Localhost; only the restricted volume types.

Usage: pss_check.py FILE...   (exit 1 on a violation)
"""
import sys

import yaml

ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                   "projected", "secret", "image"}


def pod_specs(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield spec["template"]["spec"]
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]


def violations(pod):
    out = []
    psc = pod.get("securityContext") or {}
    for k in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(k):
            out.append(f"{k} is set")
    for v in pod.get("volumes") or []:
        types = set(v) - {"name"}
        if not types <= ALLOWED_VOLUMES:
            out.append(f"volume {v['name']}: type {sorted(types - ALLOWED_VOLUMES)} not allowed")
    containers = (pod.get("containers") or []) + (pod.get("initContainers") or [])
    for c in containers:
        sc = c.get("securityContext") or {}
        n = c["name"]
        if sc.get("privileged"):
            out.append(f"{n}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{n}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{n}: capabilities.drop must include ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{n}: capabilities.add {caps['add']}")
        if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            out.append(f"{n}: runAsNonRoot must be true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{n}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{n}: seccompProfile must be RuntimeDefault or Localhost (is {seccomp})")
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append(f"{n}: hostPort {p['hostPort']}")
    return out


def main():
    bad = 0
    count = 0
    for f in sys.argv[1:]:
        for doc in yaml.safe_load_all(open(f)):
            if not doc:
                continue
            for pod in pod_specs(doc):
                count += 1
                name = f"{doc['kind']}/{doc['metadata']['name']}"
                for v in violations(pod):
                    print(f"FAIL {f}: {name}: {v}")
                    bad += 1
    print(f"{count} pod template(s) checked against the restricted Pod Security Standard, {bad} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
