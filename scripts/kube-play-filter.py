#!/usr/bin/env python3
"""Turns `photo-operator render` output into what podman 4.3.1's `kube play` can run.

    kube-play-filter.py RENDERED SITE OUT_DIR [SECRET/KEY=VALUE ...]

RENDERED is the render of SITE; SITE's Secret documents (the ones the user or the operator
makes in a cluster: an external database's URI, `<name>-credentials`) are the pod's Secrets,
with SECRET/KEY=VALUE replacing a value. Writes:

  OUT_DIR/play.yaml            the Deployment (less its ports and probes, see below), its
                               ConfigMap and its PersistentVolumeClaims (kube play's input)
  OUT_DIR/secrets/NAME.json    each Secret as podman 4.3.1's secretKeyRef reads a podman
                               secret: a JSON object of base64 values (`podman secret create
                               NAME FILE`). kube play's own handling of a Secret document
                               stores the YAML, which its secretKeyRef then fails to parse
                               ("secret ... is not valid JSON").
  OUT_DIR/expect.env           what the check compares the container with: CLAIMS, USER_ID,
                               GROUP_ID, MEMORY_LIMIT_BYTES, MEMORY_REQUEST_BYTES,
                               GRACE_SECONDS

and prints, one a line, what of the rendered objects kube play does not express ("kind/name:
field: what happens instead"), found in the objects themselves. Fails on a Deployment that
references a ConfigMap, Secret or claim it does not have (kube play's errors say less).
"""

import base64
import json
import os
import sys

import yaml

PLAYED = ("ConfigMap", "PersistentVolumeClaim", "Deployment")


def quantity(q):
    """Bytes of a Kubernetes memory quantity (512Mi, 1G, 1024)."""
    q = str(q)
    for suffix, factor in (("Ki", 2**10), ("Mi", 2**20), ("Gi", 2**30), ("Ti", 2**40),
                           ("k", 10**3), ("M", 10**6), ("G", 10**9), ("T", 10**12)):
        if q.endswith(suffix):
            return int(float(q[: -len(suffix)]) * factor)
    return int(q)


def main():
    rendered, site, out = sys.argv[1:4]
    overrides = {}
    for arg in sys.argv[4:]:
        ref, value = arg.split("=", 1)
        overrides[tuple(ref.split("/", 1))] = value
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    secrets = {}
    for d in yaml.safe_load_all(open(site)):
        if d and d.get("kind") == "Secret":
            name = d["metadata"]["name"]
            data = {k: base64.b64decode(v).decode() for k, v in (d.get("data") or {}).items()}
            data.update(d.get("stringData") or {})
            secrets[name] = data
    for (name, key), value in overrides.items():
        if name not in secrets:
            sys.exit(f"no Secret {name} in {site}")
        secrets[name][key] = value

    notes = []

    def note(obj, field, what):
        notes.append(f"{obj['kind']}/{obj['metadata']['name']}: {field}: {what}")

    for name in secrets:
        notes.append(f"Secret/{name}: made by `podman secret create` from its data as JSON, not "
                     "played: kube play 4.3.1 stores a Secret document as YAML, which its "
                     "secretKeyRef then fails to read (\"secret ... is not valid JSON\")")
    played = [d for d in docs if d["kind"] in PLAYED]
    for d in docs:
        if d["kind"] not in PLAYED:
            notes.append(f"{d['kind']}/{d['metadata']['name']}: not played (kube play knows "
                         "Pod, Deployment, PersistentVolumeClaim, ConfigMap and Secret only)")
    deployments = [d for d in played if d["kind"] == "Deployment"]
    if len(deployments) != 1:
        sys.exit(f"expected one Deployment in {rendered}, found {len(deployments)}")
    dep = deployments[0]
    if dep["spec"].get("replicas", 1) != 1:
        sys.exit("the check runs one pod (its database is in that pod's network namespace): "
                 f"replicas is {dep['spec']['replicas']}")
    configmaps = {d["metadata"]["name"] for d in played if d["kind"] == "ConfigMap"}
    claims = {d["metadata"]["name"] for d in played if d["kind"] == "PersistentVolumeClaim"}

    for d in played:
        if d["kind"] == "PersistentVolumeClaim":
            spec = d["spec"]
            note(d, f"accessModes {','.join(spec.get('accessModes', []))}",
                 "ignored (a local podman volume, mountable by any container)")
            size = spec.get("resources", {}).get("requests", {}).get("storage")
            if size:
                note(d, f"resources.requests.storage {size}", "ignored (the volume is not bounded)")
            if spec.get("storageClassName"):
                note(d, "storageClassName", "ignored (podman's local volume driver)")

    spec = dep["spec"]
    if "strategy" in spec:
        note(dep, "spec.strategy", "ignored (kube play makes the pods once; no rollout)")
    if "revisionHistoryLimit" in spec:
        note(dep, "spec.revisionHistoryLimit", "ignored (no ReplicaSets)")
    pod = spec["template"]["spec"]
    psc = pod.get("securityContext", {})
    if "fsGroup" in psc:
        note(dep, f"securityContext.fsGroup {psc['fsGroup']}",
             "ignored: volumes are not group-owned and setgid; podman chowns a new empty "
             "volume to the container's user instead")
    if "fsGroupChangePolicy" in psc:
        note(dep, "securityContext.fsGroupChangePolicy", "ignored (no fsGroup)")
    if psc.get("runAsNonRoot") or any(
            (c.get("securityContext") or {}).get("runAsNonRoot") for c in pod["containers"]):
        note(dep, "securityContext.runAsNonRoot",
             "not enforced by podman; runAsUser is applied, and the check asserts the uid")
    if "serviceAccountName" in pod or "automountServiceAccountToken" in pod:
        note(dep, "serviceAccountName, automountServiceAccountToken",
             "ignored (no API server; no token is mounted, as automount false asks)")
    if "topologySpreadConstraints" in pod:
        note(dep, "topologySpreadConstraints", "ignored (one host)")
    if "terminationGracePeriodSeconds" in pod:
        note(dep, f"terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']}",
             "not the container's stop timeout; the check passes it to `podman stop -t`")
    for v in pod.get("volumes", []):
        if "emptyDir" in v:
            limit = (v["emptyDir"] or {}).get("sizeLimit")
            note(dep, f"volumes[{v['name']}].emptyDir" + (f".sizeLimit {limit}" if limit else ""),
                 "an anonymous podman volume named after the volume (a podman volume of "
                 "that name, if any, is used instead and kept), on disk"
                 + (", not bounded (no eviction)" if limit else ""))
        elif "persistentVolumeClaim" in v:
            claim = v["persistentVolumeClaim"]["claimName"]
            if claim not in claims:
                sys.exit(f"the Deployment mounts claim {claim}, not rendered")
        elif "secret" in v or "configMap" in v:
            pass
        else:
            sys.exit(f"volume {v['name']}: a kind this check does not know: {v}")
    for c in pod["containers"]:
        for ref in c.get("envFrom", []):
            if "configMapRef" in ref and ref["configMapRef"]["name"] not in configmaps:
                sys.exit(f"envFrom: ConfigMap {ref['configMapRef']['name']} not rendered")
            if "secretRef" in ref and ref["secretRef"]["name"] not in secrets:
                sys.exit(f"envFrom: Secret {ref['secretRef']['name']} not in {site}")
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref and ref["key"] not in secrets.get(ref["name"], {}):
                sys.exit(f"env {e['name']}: Secret {ref['name']} key {ref['key']} not in {site}")
        # Taken out of what is played (the check below probes the same paths and ports).
        if c.pop("ports", None):
            note(dep, f"containers[{c['name']}].ports",
                 "taken out: kube play 4.3.1 publishes each containerPort on the same host "
                 "port (0.0.0.0:8080, 0.0.0.0:9090, taken on a shared machine) and refuses "
                 "them without a network; the pod's own network namespace has the ports")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            p = c.pop(probe, None)
            if not p:
                continue
            get = p.get("httpGet") or {}
            what = f"{get.get('path')} on port {get.get('port')}" if get else "not an httpGet"
            if probe == "livenessProbe":
                why = ("kube play 4.3.1 turns it into a podman healthcheck `curl -f "
                       f"http://localhost:<port>{get.get('path', '')}` run by a shell in the "
                       "container (the distroless image has neither; a named port becomes 0), "
                       "restarting it on failure, on systemd timers (none on this machine)")
            else:
                why = "kube play 4.3.1 ignores it"
            note(dep, f"containers[{c['name']}].{probe} ({what})",
                 f"taken out: {why}; the check asks the same path on that port itself")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for name, value in (res.get(kind) or {}).items():
                if name == "memory":
                    continue  # applied (limit, and request as a reservation): the check reads them back
                note(dep, f"containers[{c['name']}].resources.{kind}.{name} {value}", "ignored")
        sc = c.get("securityContext", {})
        if sc.get("seccompProfile", {}).get("type") == "RuntimeDefault" \
                or psc.get("seccompProfile", {}).get("type") == "RuntimeDefault":
            note(dep, "seccompProfile RuntimeDefault",
                 "not read; podman's default seccomp profile applies anyway (checked)")

    container = pod["containers"][0]
    sc = container.get("securityContext") or {}
    memory = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    reserved = ((container.get("resources") or {}).get("requests") or {}).get("memory")
    expect = {
        "CLAIMS": " ".join(sorted(claims)),
        "USER_ID": sc.get("runAsUser", psc.get("runAsUser")),
        "GROUP_ID": sc.get("runAsGroup", psc.get("runAsGroup")),
        "MEMORY_LIMIT_BYTES": quantity(memory) if memory else 0,
        "MEMORY_REQUEST_BYTES": quantity(reserved) if reserved else 0,
        "GRACE_SECONDS": pod.get("terminationGracePeriodSeconds", 30),
    }
    os.makedirs(os.path.join(out, "secrets"), exist_ok=True)
    with open(os.path.join(out, "expect.env"), "w") as f:
        f.writelines(f"{k}='{v}'\n" for k, v in expect.items())
    with open(os.path.join(out, "play.yaml"), "w") as f:
        yaml.safe_dump_all(played, f, sort_keys=False)
    for name, data in secrets.items():
        with open(os.path.join(out, "secrets", name + ".json"), "w") as f:
            json.dump({k: base64.b64encode(v.encode()).decode() for k, v in data.items()}, f)
    for n in notes:
        print(n)


main()
