#!/usr/bin/env python3
"""Check that the chart's RBAC grants exactly the API calls the operator makes.

The list of calls is DERIVED FROM operator/src, not written by hand:

1. Child kinds: the `Kind` enum of operator/src/children/kind.rs and its `gvkp()` table
   (group, version, kind, plural). A variant without a table row is an error.
2. Kubernetes API handles: every `Api<T>` / `Api::<T>` in non-test code (files other than
   tests.rs, fixtures.rs, test_support.rs and those in a tests/ folder, without the
   `#[cfg(test)] mod x;` declarations, and only up to the first other `#[cfg(test)]` of each
   file). For
   each handle the variable it is bound to and the resource it addresses are found:
     - a typed `Api<T>`: T through TYPES below (k8s-openapi types) or a `#[kube(group, plural,
       kind)]` custom resource in operator/src (PhotoSite); `DeserializeGuard<T>` is T;
     - `Api<DynamicObject>` built from `kind.api_resource()` inside a function: the child kinds
       that function iterates over: `Kind::ALL` minus the kinds a `protected(kind)` guard
       skips (the `=> true` arms of `fn protected`'s exhaustive match, or its `matches!`
       list), or every kind for the apply loop.
   Then every method called on that variable in the same function maps to verbs (VERBS
   below: `patch` with `Patch::Apply` is server-side apply, which needs `create` too for an
   object that does not exist yet; `patch_status` is `patch` on `<plural>/status`);
   `Controller::new(var, ..)` and `watcher(var, ..)` are `list` + `watch`, and so is passing
   `var` to a function of operator/src that hands that parameter on to `watcher` (directly or
   through another such function: the watch helpers of controller/watches.rs); such a
   parameter counts as a recognised handle.
   A handle, method or type the script does not know is an error: teach the script (and the
   chart) about it, never let a call go unchecked.
3. Libraries that call the API themselves (LIBRARIES below), detected by their entry point:
   kube-runtime's events `Recorder` (create, then a merge patch for a repeated Event, see
   kube-runtime src/events.rs) and kube-lease-manager's `LeaseManagerBuilder` (get, create,
   patch of one Lease in the operator's namespace, see kube-lease-manager src/state.rs);
   re-derived from those files in the cargo registry at the Cargo.lock version when present.
   Discovery (`list_api_group_resources`) is a non-resource GET allowed to every
   authenticated user by the built-in system:discovery role: reported, not required.

The chart is rendered with `helm template` (default values, then each values file given)
and the rules bound to the operator's ServiceAccount are collected. The check fails when a
derived call is not allowed (missing permission) or when the chart allows a (group,
resource, verb) that no call needs (not least privilege); wildcards are always rejected.
Calls on the leader-election Lease must be granted in the release namespace.

Usage: rbac_check.py --helm HELM [--values FILE]... [--print]
"""
import argparse
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "operator/src"
CHART = ROOT / "charts/photo-operator"

# k8s-openapi type -> (group, plural). Add a row when the operator uses a new typed Api.
TYPES = {
    "Secret": ("", "secrets"),
    "ConfigMap": ("", "configmaps"),
    "Service": ("", "services"),
    "ServiceAccount": ("", "serviceaccounts"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "Pod": ("", "pods"),
    "Namespace": ("", "namespaces"),
    "Event": ("events.k8s.io", "events"),
    "Lease": ("coordination.k8s.io", "leases"),
    "Deployment": ("apps", "deployments"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "NetworkPolicy": ("networking.k8s.io", "networkpolicies"),
    "Ingress": ("networking.k8s.io", "ingresses"),
    "HorizontalPodAutoscaler": ("autoscaling", "horizontalpodautoscalers"),
    "CustomResourceDefinition": ("apiextensions.k8s.io", "customresourcedefinitions"),
}

# kube::Api method -> (verbs, subresource)
VERBS = {
    "get": (["get"], ""),
    "get_opt": (["get"], ""),
    "get_metadata": (["get"], ""),
    "list": (["list"], ""),
    "list_metadata": (["list"], ""),
    "watch": (["watch"], ""),
    "create": (["create"], ""),
    "replace": (["update"], ""),
    "delete": (["delete"], ""),
    "delete_collection": (["deletecollection"], ""),
    "patch": (["patch"], ""),  # + create when the patch is Patch::Apply (SSA may create)
    "patch_status": (["patch"], "status"),
    "get_status": (["get"], "status"),
    "replace_status": (["update"], "status"),
    "patch_scale": (["patch"], "scale"),
    "get_scale": (["get"], "scale"),
    "entry": (["get", "create", "update"], ""),
}

# Libraries that make API calls: (entry-point regex, group, plural, verbs, scope, why,
# (crate, file, regex of the calls in that file)). When the crate's source is in the cargo
# registry (it is after any cargo build), the verbs are re-derived from it at the version in
# Cargo.lock and must be a subset of the table's, so a library upgrade that starts making a
# new call fails here.
LIBRARIES = [
    (r"\bRecorder::new\b", "events.k8s.io", "events", ["create", "patch"], "sites",
     "kube-runtime events::Recorder: create, merge-patch for a repeated Event",
     ("kube-runtime", "src/events.rs", r"\bevents\s*\.\s*(\w+)\s*\(")),
    (r"\bLeaseManagerBuilder::new\b", "coordination.k8s.io", "leases", ["get", "create", "patch"],
     "operator", "kube-lease-manager: get, create once, patch to renew and release",
     ("kube-lease-manager", "src/state.rs", r"\bself\.api\s*\.\s*(\w+)\s*\(")),
]
DISCOVERY = r"\blist_api_group_resources\b|\bDiscovery::new\b"


def code(path):
    """Non-test source of a file: without the declarations of test-only modules
    (`#[cfg(test)] mod tests;`, whose files are skipped by name or folder), and up to the first
    other `#[cfg(test)]` (the test module at the end of a file)."""
    text = re.sub(r"#\[cfg\(test\)\]\s*(?:pub(?:\(crate\))?\s+)?mod\s+\w+\s*;", "", path.read_text())
    cut = text.find("#[cfg(test)]")
    return text if cut < 0 else text[:cut]


def test_only(path):
    """Files compiled only for tests: tests.rs, fixtures.rs, test_support.rs and anything in a
    `tests/` folder of operator/src."""
    return path.name in ("tests.rs", "fixtures.rs", "test_support.rs") or "tests" in path.relative_to(SRC).parts[:-1]


def functions(text):
    """(name, body) of each top-level-ish fn, by brace matching."""
    out = []
    for m in re.finditer(r"\bfn\s+(\w+)\s*(<[^>{]*>)?\s*\(", text):
        start = text.find("{", m.end())
        semi = text.find(";", m.end())
        if start < 0 or 0 <= semi < start:
            continue  # a declaration without a body
        depth = 0
        for i in range(start, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    out.append((m.group(1), text[m.start():i + 1]))
                    break
    return out


def split_args(text, start, angle=False):
    """The top-level, comma-separated arguments of the list whose `(` is at text[start]
    (`angle`: `<...>` nests too, for a signature's generic types)."""
    opening, closing = ("([{<", ")]}>") if angle else ("([{", ")]}")
    args, depth, cur = [], 0, ""
    for i, ch in enumerate(text[start:], start):
        if ch == ">" and angle and text[i - 1] == "-":
            cur += ch  # `->`, not a closing bracket
            continue
        if ch in opening:
            depth += 1
            if depth == 1:
                continue
        elif ch in closing:
            depth -= 1
            if depth == 0:
                if cur.strip():
                    args.append(cur.strip())
                return args
        if ch == "," and depth == 1:
            args.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return args


def api_params(fn_text):
    """{name: position} of the `name: Api<...>` parameters of a function."""
    m = re.search(r"\bfn\s+\w+\s*(<[^>{]*>)?\s*\(", fn_text)
    params = split_args(fn_text, m.end() - 1, angle=True) if m else []
    out = {}
    for i, p in enumerate(params):
        pm = re.match(r"(?:mut\s+)?(\w+)\s*:\s*Api\s*<", p)
        if pm:
            out[pm.group(1)] = i
    return out


def calls_of(body, callee):
    """The argument lists of the calls of `callee` (under any path) in body."""
    out = []
    for m in re.finditer(rf"(?<![\w.]){callee}\s*\(", body):
        if re.search(r"\bfn\s+$", body[:m.start()]):
            continue  # its definition
        out.append(split_args(body, m.end() - 1))
    return out


def watch_functions():
    """{function name: position of the Api parameter it watches}: the functions of
    operator/src that call `watcher(param, ..)` on an Api parameter, or hand it on to one."""
    fns = []
    for f in sorted(SRC.rglob("*.rs")):
        if not test_only(f):
            fns.extend(functions(code(f)))
    found = {}
    changed = True
    while changed:
        changed = False
        for name, body in fns:
            if name in found:
                continue
            for param, pos in api_params(body).items():
                handed = any(len(args) > found[callee] and
                             re.fullmatch(rf"{param}(\.clone\(\))?", args[found[callee]])
                             for callee in found for args in calls_of(body, callee))
                if re.search(rf"\bwatcher\s*\(\s*{param}\b", body) or handed:
                    found[name] = pos
                    changed = True
                    break
    return found


def kinds_table():
    text = code(SRC / "children/kind.rs")
    enum = re.search(r"pub enum Kind\s*\{([^}]*)\}", text)
    if not enum:
        sys.exit("rbac_check: no `pub enum Kind` in operator/src/children/kind.rs (update rbac_check.py)")
    variants = re.findall(r"^\s*(\w+),?\s*$", enum.group(1), re.M)
    rows = {}
    for m in re.finditer(r'Kind::(\w+)\s*=>\s*\{?\s*\(\s*"([^"]*)",\s*"([^"]*)",\s*"([^"]*)",\s*"([^"]*)",?\s*\)',
                         text, re.S):
        rows[m.group(1)] = (m.group(2), m.group(3), m.group(4), m.group(5))
    missing = [v for v in variants if v not in rows]
    if missing:
        sys.exit(f"rbac_check: Kind variants without a gvkp() row: {missing}")
    all_m = re.search(r"pub const ALL:\s*\[Kind;\s*\d+\]\s*=\s*\[([^\]]*)\]", text, re.S)
    all_kinds = re.findall(r"Kind::(\w+)", all_m.group(1)) if all_m else variants
    if sorted(all_kinds) != sorted(variants):
        sys.exit(f"rbac_check: Kind::ALL {all_kinds} differs from the enum {variants}")
    protected = []
    for f in sorted(SRC.rglob("*.rs")):
        for name, body in functions(code(f)):
            if name == "protected":
                # an exhaustive `match kind { A | B => true, C | ... => false }`, or a
                # `matches!(kind, A | B)`: the kinds of the `=> true` arms, else every kind named
                arms = re.findall(r"((?:Kind::\w+\s*\|?\s*)+)=>\s*true\b", body)
                protected = re.findall(r"Kind::(\w+)", " ".join(arms) if arms else body)
    return variants, rows, protected


def custom_types():
    """Rust type -> (group, plural) of #[kube(...)] custom resources."""
    out = {}
    for f in SRC.rglob("*.rs"):
        for m in re.finditer(r"#\[kube\((.*?)\)\]\s*(?:#\[[^\]]*\]\s*)*pub struct (\w+)", code(f), re.S):
            attrs = m.group(1)
            g = re.search(r'group\s*=\s*"([^"]+)"', attrs)
            k = re.search(r'kind\s*=\s*"([^"]+)"', attrs)
            p = re.search(r'plural\s*=\s*"([^"]+)"', attrs)
            if g and k:
                out[k.group(1)] = (g.group(1), p.group(1) if p else k.group(1).lower() + "s")
    return out


def library_verbs(crate, lib_file, call_re):
    """Verbs a library's source calls, at the version locked in Cargo.lock (None if absent)."""
    lock = (ROOT / "Cargo.lock").read_text()
    m = re.search(rf'name = "{re.escape(crate)}"\nversion = "([^"]+)"', lock)
    if not m:
        return None
    home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    hits = sorted(home.glob(f"registry/src/*/{crate}-{m.group(1)}/{lib_file}"))
    if not hits:
        return None
    text = hits[0].read_text()
    cut = re.search(r"#\[cfg\(test\)\]\s*(?:pub(?:\(crate\))?\s+)?mod\s", text)
    text = text[:cut.start()] if cut else text
    verbs = set()
    for method in re.findall(call_re, text):
        if method in VERBS:
            verbs |= set(VERBS[method][0])
    return verbs


def derive():
    """{(group, resource, scope): {verb: set(reasons)}}, notes."""
    variants, rows, protected = kinds_table()
    customs = custom_types()
    need = defaultdict(lambda: defaultdict(set))
    notes = []
    problems = []

    def add(group, resource, verbs, scope, why):
        for v in verbs:
            need[(group, resource, scope)][v].add(why)

    watchers = watch_functions()
    for f in sorted(SRC.rglob("*.rs")):
        if test_only(f):
            continue
        text = code(f)
        rel = Path("operator/src") / f.relative_to(SRC)
        n_handles = len(re.findall(r"\bApi\s*(?:::)?\s*<", text))
        seen = 0
        for fname, body in functions(text):
            where = f"{rel}:{fname}"
            if fname in watchers:
                seen += len(api_params(body))  # handed on to `watcher`: the caller's verbs
            for m in re.finditer(r"let\s+(?:mut\s+)?(\w+)\s*:\s*Api\s*<\s*((?:\w+::)*\w+(?:\s*<\s*\w+\s*>)?)\s*>\s*=(.*?);", body, re.S):
                seen += 1
                var, ty, init = m.group(1), re.sub(r"\s", "", m.group(2)), m.group(3)
                ty = re.sub(r"^DeserializeGuard<(\w+)>$", r"\1", ty).split("::")[-1]
                cluster_wide = bool(re.search(r"Api::all", init))
                scope = "sites"
                if ty == "DynamicObject":
                    if not re.search(r"\bkind\.api_resource\(\)|\bar\b", init):
                        problems.append(f"{where}: Api<DynamicObject> `{var}` from an unknown resource: {init.strip()}")
                        continue
                    kinds = [k for k in variants if not (re.search(r"\bprotected\(kind\)", body) and k in protected)]
                    targets = [(rows[k][0], rows[k][3], f"Kind::{k}") for k in kinds]
                elif ty in TYPES:
                    targets = [(TYPES[ty][0], TYPES[ty][1], ty)]
                elif ty in customs:
                    targets = [(customs[ty][0], customs[ty][1], ty)]
                else:
                    problems.append(f"{where}: Api<{ty}>: unknown type (add it to TYPES in rbac_check.py)")
                    continue
                calls = []
                for c in re.finditer(rf"\b{var}\s*\.\s*(\w+)\s*\((.*?)\)\s*(?:\.await|;|\?)", body, re.S):
                    method, args = c.group(1), c.group(2)
                    if method in ("clone", "resource_url", "into", "as_ref"):
                        continue
                    if method not in VERBS:
                        problems.append(f"{where}: {var}.{method}(): unknown Api method (add it to VERBS)")
                        continue
                    verbs, sub = VERBS[method]
                    verbs = list(verbs)
                    if method == "patch" and "Patch::Apply" in (args + body):
                        verbs.append("create")
                    calls.append((method, verbs, sub))
                for c in re.finditer(rf"\b(Controller::new|watcher)\s*\(\s*{var}\b", body):
                    calls.append((c.group(1), ["list", "watch"], ""))
                for callee, pos in watchers.items():
                    for args in calls_of(body, callee):
                        if len(args) > pos and re.fullmatch(rf"{var}(\.clone\(\))?", args[pos]):
                            calls.append((callee, ["list", "watch"], ""))
                if not calls:
                    problems.append(f"{where}: Api `{var}` is created but no call on it was recognised")
                for method, verbs, sub in calls:
                    for g, plural, label in targets:
                        res = plural + (f"/{sub}" if sub else "")
                        add(g, res, verbs, scope, f"{rel}:{fname} {label} .{method}()")
                        if cluster_wide and set(verbs) & {"list", "watch"}:
                            notes.append(f"cluster-wide {'/'.join(verbs)} on {g or 'core'}/{res} ({rel}:{fname}, Api::all)")
        if seen != n_handles:
            problems.append(f"{rel}: {n_handles} Api handles but {seen} recognised `let x: Api<T> = ...` bindings "
                            "(bind every Api to a typed variable, or teach rbac_check.py)")
        for pattern, g, plural, verbs, scope, why, (crate, lib_file, call_re) in LIBRARIES:
            if re.search(pattern, text):
                add(g, plural, verbs, scope, f"{rel}: {why}")
                derived = library_verbs(crate, lib_file, call_re)
                if derived is None:
                    notes.append(f"{crate} source not in the cargo registry: its verbs are taken from the table")
                elif not derived <= set(verbs):
                    problems.append(f"{crate} {lib_file} now calls verbs {sorted(derived - set(verbs))} on {plural}: "
                                    "update LIBRARIES in rbac_check.py and the chart")
                else:
                    notes.append(f"{crate} {lib_file}: calls {sorted(derived)} (re-derived from its source)")
        if re.search(DISCOVERY, text):
            notes.append(f"discovery GET /apis/<group>/<version> ({rel}): granted by system:discovery")
    return need, sorted(set(notes)), problems


def render(helm, values, namespace="photo-system"):
    cmd = [helm, "template", "rbac-check", str(CHART), "-n", namespace]
    for v in values:
        cmd += ["-f", v]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def granted(docs, namespace):
    """{(group, resource, scope): set(verbs)}, problems; scope: 'cluster' or a namespace."""
    deploy = [d for d in docs if d["kind"] == "Deployment"][0]
    sa = deploy["spec"]["template"]["spec"].get("serviceAccountName", "default")
    by_name = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
               for d in docs if d["kind"] in ("Role", "ClusterRole")}
    out = defaultdict(set)
    problems = []
    for b in docs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == sa and s.get("namespace") == namespace
                   for s in b.get("subjects", [])):
            continue
        ref = b["roleRef"]
        bns = b["metadata"].get("namespace")
        role = by_name.get((ref["kind"], bns if ref["kind"] == "Role" else None, ref["name"]))
        if role is None:
            problems.append(f"{b['kind']} {b['metadata']['name']} refers to missing {ref['kind']} {ref['name']}")
            continue
        scope = "cluster" if b["kind"] == "ClusterRoleBinding" else bns
        for r in role.get("rules", []):
            for field in ("apiGroups", "resources", "verbs"):
                if "*" in r.get(field, []):
                    problems.append(f"{ref['kind']} {ref['name']}: wildcard in {field}")
            for g in r.get("apiGroups", []):
                for res in r.get("resources", []):
                    for v in r.get("verbs", []):
                        key = (g, res, scope)
                        if r.get("resourceNames"):
                            out[key].add(v + "@named")
                        else:
                            out[key].add(v)
    return out, problems


def check(need, docs, namespace, watch_ns, label):
    have, problems = granted(docs, namespace)
    # Where each scope of need must be granted.
    def places(scope):
        if scope == "operator":
            return ["cluster", namespace]
        return ["cluster", watch_ns] if watch_ns else ["cluster"]

    used = set()
    for (g, res, scope), verbs in sorted(need.items()):
        for v in sorted(verbs):
            ok = False
            for p in places(scope):
                vs = have.get((g, res, p), set())
                if v in vs:
                    ok = True
                    used.add((g, res, p, v))
                elif f"{v}@named" in vs and v not in ("create", "list", "watch", "deletecollection"):
                    ok = True
                    used.add((g, res, p, f"{v}@named"))
            if not ok:
                why = "; ".join(sorted(verbs[v]))
                problems.append(f"missing: {v} {g or 'core'}/{res} in {' or '.join(places(scope))} (needed by {why})")
    for (g, res, p), vs in sorted(have.items()):
        for v in sorted(vs):
            if (g, res, p, v) not in used:
                problems.append(f"not used by the operator (least privilege): {v.replace('@named', ' (named)')} "
                                f"{g or 'core'}/{res} in {p}")
    print(f"-- {label}: {sum(len(v) for v in have.values())} granted (group, resource, verb) in "
          f"{len(set(p for _, _, p in have))} scope(s), {len(problems)} problem(s)")
    for p in problems:
        print(f"   FAIL {p}")
    return not problems


def check_env(src, docs):
    """The Deployment only sets variables the operator reads (clap `env = "..."`)."""
    known = set(re.findall(r'env\s*=\s*"([A-Z0-9_]+)"', src)) | set(re.findall(r'env::var\("([A-Z0-9_]+)"\)', src))
    known |= {"RUST_LOG"}  # tracing-subscriber EnvFilter::try_from_default_env
    deploy = [d for d in docs if d["kind"] == "Deployment"][0]
    c = deploy["spec"]["template"]["spec"]["containers"][0]
    ok = True
    for e in c.get("env", []):
        if e["name"] not in known:
            print(f"   FAIL chart sets {e['name']}, which operator/src never reads (known: {sorted(known)})")
            ok = False
    port = re.search(r'PHOTO_OPERATOR_METRICS_ADDR",\s*default_value\s*=\s*"[^"]*:(\d+)"', src)
    cport = c["ports"][0]["containerPort"]
    print(f"-- operator env: chart sets {[e['name'] for e in c.get('env', [])]}; "
          f"metrics port {cport} (operator default {port.group(1) if port else '?'})")
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--helm", default="helm")
    ap.add_argument("--print", action="store_true", help="print the derived rule list")
    ap.add_argument("--src", help="operator source dir (default operator/src; for the self-test)")
    a = ap.parse_args()
    global SRC
    if a.src:
        SRC = Path(a.src).resolve()
    need, notes, problems = derive()
    print("Derived from operator/src (group/resource: verbs [scope]):")
    for (g, res, scope), verbs in sorted(need.items()):
        print(f"  {g or 'core'}/{res}: {', '.join(sorted(verbs))} [{'operator namespace' if scope == 'operator' else 'PhotoSite namespaces'}]")
        if a.print:
            for v in sorted(verbs):
                for why in sorted(verbs[v]):
                    print(f"      {v}: {why}")
    for n in notes:
        print(f"  note: {n}")
    ok = True
    for p in problems:
        print(f"FAIL {p}")
        ok = False
    src = "\n".join(code(f) for f in SRC.rglob("*.rs"))
    namespaced_supported = "WATCH_NAMESPACE" in src
    for label, values, watch_ns in [
        ("scope: Cluster (default values)", [], None),
        ("scope: Cluster (ci/all-on-values.yaml)", [str(CHART / "ci/all-on-values.yaml")], None),
        ("scope: Namespace (ci/namespaced-values.yaml)", [str(CHART / "ci/namespaced-values.yaml")], "photos"),
    ]:
        docs = render(a.helm, values)
        ok &= check(need, docs, "photo-system", watch_ns, label)
        if watch_ns and not namespaced_supported and any("cluster-wide" in n for n in notes):
            print("   WARN the operator lists and watches cluster-wide (Api::all) and reads no WATCH_NAMESPACE: "
                  "with scope: Namespace its Role is enough for every call except those cluster-wide "
                  "list/watch requests, which the API server will refuse. Operator support needed.")
    ok &= check_env(src, render(a.helm, []))
    print("RBAC check " + ("passed" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
