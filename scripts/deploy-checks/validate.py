#!/usr/bin/env python3
"""Validate Kubernetes YAML streams in strict mode.

Every document is validated against
  * the upstream Kubernetes OpenAPI schemas shipped by `kubernetes-validate` (strict: unknown
    fields are errors) for built-in kinds, or
  * the openAPIV3Schema of a CustomResourceDefinition (from --crds directories/files) for
    custom kinds, with Python `jsonschema`. To get the API server's pruning semantics as
    errors, every object schema without `x-kubernetes-preserve-unknown-fields: true` (and
    without its own `additionalProperties`) is treated as `additionalProperties: false`;
    `nullable` and `x-kubernetes-int-or-string` are translated; `metadata` at the root and in
    `x-kubernetes-embedded-resource` objects is checked as ObjectMeta by the API server, so
    here it only has to be an object.

    The CRD's CEL rules (`x-kubernetes-validations`) are evaluated too, with Python
    `cel-python`, after applying the schema's defaults as the API server would; transition
    rules (those using `oldSelf`) need an old object and are skipped.

A kind with neither schema is an error (unless --allow-unknown). Exit status 1 on any error.

Usage: validate.py [-k 1.33.0 [-k 1.37.0]] [--crds DIR_OR_FILE ...] [--quiet] FILE... ('-' = stdin)
"""
import argparse
import copy
import sys
from pathlib import Path

import jsonschema

try:  # optional: CEL rules are skipped without it
    import celpy
except ImportError:  # pragma: no cover
    celpy = None
import kubernetes_validate
import yaml

# libyaml when PyYAML has it: the CloudNativePG and cert-manager CRDs are large.
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def strictify(schema, root=True):
    """A copy of a structural schema where unknown fields are errors."""
    s = copy.copy(schema)
    if s.get("nullable"):
        t = s.get("type")
        if isinstance(t, str):
            s["type"] = [t, "null"]
        s.pop("nullable")
    if s.get("x-kubernetes-int-or-string"):
        s.pop("type", None)
        if "anyOf" not in s:
            s["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    for key in ("allOf", "anyOf", "oneOf"):
        if key in s:
            s[key] = [strictify(x, False) for x in s[key]]
    if "not" in s:
        s["not"] = strictify(s["not"], False)
    if "items" in s and isinstance(s["items"], dict):
        s["items"] = strictify(s["items"], False)
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = strictify(s["additionalProperties"], False)
    props = s.get("properties")
    if props is not None:
        props = {k: strictify(v, False) for k, v in props.items()}
        if root or s.get("x-kubernetes-embedded-resource"):
            props["metadata"] = {"type": "object"}
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
        s["properties"] = props
    if s.get("type") == "object" or props is not None:
        if not s.get("x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in s:
            if props is None and s.get("x-kubernetes-embedded-resource"):
                s["properties"] = {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                                   "metadata": {"type": "object"}}
            s["additionalProperties"] = False
    return s


def apply_defaults(schema, value):
    """Fill in the schema's defaults at every level, as the API server does before it
    evaluates any rule (a rule at the root may read a defaulted field deep down)."""
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for k, sub in props.items():
            if k not in value and "default" in sub:
                value[k] = copy.deepcopy(sub["default"])
        for k, v in value.items():
            if k in props:
                apply_defaults(props[k], v)
            elif isinstance(schema.get("additionalProperties"), dict):
                apply_defaults(schema["additionalProperties"], v)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for v in value:
            apply_defaults(schema["items"], v)


def cel_errors(schema, value, path="", env=None):
    """Errors of the CEL rules of a structural schema on a value (defaults applied first)."""
    if celpy is None or value is None:
        return []
    env = env or celpy.Environment()
    errors = []
    props = schema.get("properties") or {}
    if not path:
        apply_defaults(schema, value)
    for rule in schema.get("x-kubernetes-validations") or []:
        if "oldSelf" in rule["rule"]:
            continue
        try:
            ok = env.program(env.compile(rule["rule"])).evaluate({"self": celpy.json_to_cel(value)})
        except Exception as e:  # an extension cel-python lacks: say so, do not guess
            print(f"note: CEL rule not evaluated at /{path}: {rule['rule']!r}: {type(e).__name__}")
            continue
        if isinstance(ok, Exception):  # cel-python returns evaluation errors as values
            print(f"note: CEL rule not evaluated at /{path}: {rule['rule']!r}: {ok}")
        elif not bool(ok):
            errors.append(f"at /{path}: CEL rule failed: {rule.get('message') or rule['rule']}")
    if isinstance(value, dict):
        for k, v in value.items():
            if k in props:
                errors += cel_errors(props[k], v, f"{path}/{k}".lstrip("/"), env)
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += cel_errors(schema["additionalProperties"], v, f"{path}/{k}".lstrip("/"), env)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            errors += cel_errors(schema["items"], v, f"{path}/{i}".lstrip("/"), env)
    return errors


def load_crds(paths):
    """{(group, version, kind): (schema, source, original schema)} from CRD files."""
    out = {}
    files = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files += sorted(p.rglob("*.yaml")) + sorted(p.rglob("*.yml"))
        elif p.exists():
            files.append(p)
    for f in files:
        for doc in yaml.load_all(f.read_text(), Loader=LOADER):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for v in spec["versions"]:
                schema = (v.get("schema") or {}).get("openAPIV3Schema")
                if schema:
                    out[(spec["group"], v["name"], spec["names"]["kind"])] = (strictify(schema), str(f), schema)
    return out


def where(err):
    path = "/".join(str(p) for p in err.absolute_path)
    return f"at /{path}: " if path else ""


def validate_doc(doc, crds, version, allow_unknown):
    """A list of error strings for one object."""
    api_version = doc.get("apiVersion", "")
    kind = doc.get("kind", "")
    group, _, ver = api_version.rpartition("/")
    if (group, ver, kind) in crds:
        schema, _src, original = crds[(group, ver, kind)]
        v = jsonschema.Draft7Validator(schema)
        errors = [f"{where(e)}{e.message}" for e in sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))]
        return errors or cel_errors(original, copy.deepcopy(doc))
    try:
        kubernetes_validate.validate(doc, version, strict=True)
        return []
    except kubernetes_validate.ValidationError as e:
        return [f"{where(e)}{e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        if allow_unknown:
            return []
        return [f"no schema for {api_version} {kind} (not a Kubernetes {version} kind and no CRD given)"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-k", "--kubernetes-version", action="append",
                    help="Kubernetes version of the schemas (repeatable; default 1.33.0)")
    ap.add_argument("--crds", action="append", default=[], help="CRD file or directory (repeatable)")
    ap.add_argument("--allow-unknown", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    versions = a.kubernetes_version or ["1.33.0"]
    crds = load_crds(a.crds)
    docs = []
    for f in a.files:
        text = sys.stdin.read() if f == "-" else Path(f).read_text()
        docs += [(f, d) for d in yaml.load_all(text, Loader=LOADER) if d]
    failed = False
    for version in versions:
        failures = 0
        for f, doc in docs:
            name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            errors = validate_doc(doc, crds, version, a.allow_unknown)
            if errors:
                failures += 1
                for e in errors:
                    print(f"FAIL {f}: {name} (Kubernetes {version}): {e}")
            elif not a.quiet:
                group, _, ver = doc.get("apiVersion", "").rpartition("/")
                src = f"CRD {crds[(group, ver, doc.get('kind'))][1]}" if (group, ver, doc.get("kind")) in crds \
                    else f"Kubernetes {version}"
                print(f"ok   {f}: {name} ({src})")
        print(f"{len(docs) - failures}/{len(docs)} objects valid (Kubernetes {version} strict, "
              f"{len(crds)} CRD versions loaded)")
        failed |= failures > 0
    if not docs:
        print("no objects to validate")
    return 1 if failed or not docs else 0


if __name__ == "__main__":
    sys.exit(main())
