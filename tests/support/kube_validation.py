"""The API server's semantic validation for what the operator creates, with the real messages.

OpenAPI schema checks are elsewhere (support.k8s_schema, kubernetes-validate); this is what only a live API server
says: quantity grammar (a 400 at decode time, as the real server answers), object names and label syntax, ownerReference
shape, `procMount: Unmasked` without `hostUsers: false`, Job rules (Indexed completions, restartPolicy, the
generated job-name label) and Job spec immutability. Messages follow k8s.io/apimachinery's field errors:
`<Kind>[.<group>] "<name>" is invalid: <field>: <type>: <detail>` (several errors in `[...]`), with one cause each.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import kmock

Obj = dict[str, Any]

QUANTITY_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?\d+)?$")
QUANTITY_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_1123 = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_LABEL_1035 = r"[a-z]([-a-z0-9]*[a-z0-9])?"
_LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    f"start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{_SUBDOMAIN}')"
)
LABEL_1123_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end "
    f"with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{_LABEL_1123}')"
)
LABEL_1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    f"character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation "
    f"is '{_LABEL_1035}')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation "
    f"is '{_LABEL_VALUE}')"
)
QUALIFIED_NAME_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    f"'{_QUALIFIED_NAME}')"
)
# Kinds whose names are DNS labels rather than subdomains.
_DNS_1035_KINDS = {"Service"}
_DNS_1123_LABEL_KINDS = {"Namespace"}
INDEXED_MAX = 100_000


@dataclass(frozen=True)
class FieldError:
    field: str
    kind: str  # "Invalid value", "Required value", "Unsupported value", "Forbidden", "Too long"
    detail: str
    value: Any = None

    @property
    def reason(self) -> str:
        return {
            "Invalid value": "FieldValueInvalid",
            "Required value": "FieldValueRequired",
            "Unsupported value": "FieldValueNotSupported",
            "Forbidden": "FieldValueForbidden",
            "Too long": "FieldValueTooLong",
        }[self.kind]

    def text(self) -> str:
        if self.kind in ("Invalid value", "Unsupported value"):
            return f"{self.field}: {self.kind}: {_go_value(self.value)}: {self.detail}"
        return f"{self.field}: {self.kind}: {self.detail}" if self.detail else f"{self.field}: {self.kind}"


def _go_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    return "{...}"


def invalid(kind: str, group: str, name: str, errors: list[FieldError]) -> kmock.KubernetesError:
    """422 Invalid, as the API server words it."""
    qualified = f"{kind}.{group}" if group else kind
    texts = [e.text() for e in errors]
    body = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    causes = [{"reason": e.reason, "message": e.text().split(": ", 1)[1], "field": e.field} for e in errors]
    return kmock.KubernetesError(
        status=422,
        reason="Invalid",
        message=f'{qualified} "{name}" is invalid: {body}',
        details={"name": name, "group": group, "kind": kind, "causes": causes},
    )


def bad_request(message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=400, reason="BadRequest", message=message)


# --------------------------------------------------------------------------------------------- pieces


def name_errors(kind: str, name: str, field: str = "metadata.name") -> list[FieldError]:
    if kind in _DNS_1035_KINDS:
        pattern, msg, limit = _LABEL_1035, LABEL_1035_MSG, 63
    elif kind in _DNS_1123_LABEL_KINDS:
        pattern, msg, limit = _LABEL_1123, LABEL_1123_MSG, 63
    else:
        pattern, msg, limit = _SUBDOMAIN, SUBDOMAIN_MSG, 253
    out = []
    if len(name) > limit:
        out.append(FieldError(field, "Invalid value", f"must be no more than {limit} characters", name))
    if not re.fullmatch(pattern, name):
        out.append(FieldError(field, "Invalid value", msg, name))
    return out


def qualified_name_errors(key: Any, field: str) -> list[FieldError]:
    """A label or annotation key: an optional DNS-subdomain prefix, then a name of at most 63 characters."""
    out: list[FieldError] = []
    prefix, _, base = str(key).rpartition("/")
    if prefix and (len(prefix) > 253 or not re.fullmatch(_SUBDOMAIN, prefix)):
        out.append(FieldError(field, "Invalid value", "prefix part " + SUBDOMAIN_MSG, key))
    if len(base) > 63:
        out.append(FieldError(field, "Invalid value", "name part must be no more than 63 characters", key))
    if not re.fullmatch(_QUALIFIED_NAME, base):
        out.append(FieldError(field, "Invalid value", QUALIFIED_NAME_MSG, key))
    return out


def label_errors(labels: Any, field: str) -> list[FieldError]:
    out: list[FieldError] = []
    if not isinstance(labels, dict):
        return out
    for key, value in labels.items():
        out += qualified_name_errors(key, field)
        text = str(value)
        if len(text) > 63:
            out.append(FieldError(field, "Invalid value", "must be no more than 63 characters", text))
        if not re.fullmatch(_LABEL_VALUE, text):
            out.append(FieldError(field, "Invalid value", LABEL_VALUE_MSG, text))
    return out


# apimachinery's TotalAnnotationSizeLimitB: the keys' and values' lengths together, per object (and per template).
ANNOTATIONS_MAX_BYTES = 256 * 1024


def annotation_errors(annotations: Any, field: str) -> list[FieldError]:
    """ValidateAnnotations: each key a qualified name (as a label key), all of them together at most 256 KiB."""
    out: list[FieldError] = []
    if not isinstance(annotations, dict):
        return out
    for key in annotations:
        out += qualified_name_errors(key, field)
    size = sum(len(str(k)) + len(str(v)) for k, v in annotations.items())
    if size > ANNOTATIONS_MAX_BYTES:
        out.append(FieldError(field, "Too long", f"may not be more than {ANNOTATIONS_MAX_BYTES} bytes"))
    return out


def owner_reference_errors(meta: Obj) -> list[FieldError]:
    refs = meta.get("ownerReferences") or []
    out = []
    controllers = []
    for ref in refs:
        for key, what in (("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not ref.get(key):
                out.append(
                    FieldError(
                        f"metadata.ownerReferences.{key}", "Invalid value", f"{what} must not be empty", ""
                    )
                )
        if ref.get("controller"):
            controllers.append(f"{ref.get('kind')}/{ref.get('name')}")
    if len(controllers) > 1:
        out.append(
            FieldError(
                "metadata.ownerReferences",
                "Invalid value",
                'Only one reference can have Controller set to true. Found "true" in references for '
                + " and ".join(controllers),
                refs,
            )
        )
    return out


def _quantities(resources: Obj, field: str) -> Iterator[tuple[str, str, Any]]:
    for section in ("requests", "limits"):
        for name, value in (resources.get(section) or {}).items():
            yield f"{field}.{section}[{name}]", str(name), value


def check_quantities(obj: Obj) -> None:
    """Every resource quantity of a pod (template) or claim parses (else a 400 at decode time, as the real server)."""
    for value in _object_quantities(obj):
        if not (isinstance(value, int | float) or (isinstance(value, str) and QUANTITY_RE.match(value))):
            kind = obj.get("kind", "Object")
            version = str(obj.get("apiVersion", "v1")).rpartition("/")[2]
            raise bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {QUANTITY_MSG}')


def _object_quantities(obj: Obj) -> Iterator[Any]:
    import purpcode_operator.pss as pss

    kind = obj.get("kind")
    if kind == "PersistentVolumeClaim":
        resources = (obj.get("spec") or {}).get("resources") or {}
        for section in ("requests", "limits"):
            yield from (resources.get(section) or {}).values()
        return
    found = pss.pod_template(obj)
    if found is None:
        return
    spec = found[1]
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            for _field, _name, value in _quantities(c.get("resources") or {}, ""):
                yield value
    for section in ("requests", "limits"):
        yield from ((spec.get("resources") or {}).get(section) or {}).values()
    for vol in spec.get("volumes") or []:
        limit = (vol.get("emptyDir") or {}).get("sizeLimit")
        if limit is not None:
            yield limit


def _parse_quantity(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    m = QUANTITY_RE.match(str(value))
    assert m is not None
    number = float(m.group(1))
    suffix = m.group(3) or ""
    scale = {
        "": 1,
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "P": 1e15,
        "E": 1e18,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "Pi": 2**50,
        "Ei": 2**60,
    }
    if suffix in scale:
        return number * scale[suffix]
    return number * 10 ** int(suffix[1:])


def pod_spec_errors(spec: Obj, field: str) -> list[FieldError]:
    out: list[FieldError] = []
    host_users = spec.get("hostUsers")
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for i, c in enumerate(spec.get(key) or []):
            cfield = f"{field}.{key}[{i}]"
            sc = c.get("securityContext") or {}
            if sc.get("procMount") == "Unmasked" and host_users is not False:
                out.append(
                    FieldError(
                        f"{cfield}.securityContext.procMount",
                        "Invalid value",
                        "`hostUsers` must be false to use `Unmasked`",
                        "Unmasked",
                    )
                )
            resources = c.get("resources") or {}
            for qfield, _name, value in _quantities(resources, f"{cfield}.resources"):
                if _parse_quantity(value) < 0:
                    out.append(
                        FieldError(qfield, "Invalid value", "must be greater than or equal to 0", value)
                    )
            limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
            for name, value in requests.items():
                if name in limits and _parse_quantity(value) > _parse_quantity(limits[name]):
                    out.append(
                        FieldError(
                            f"{cfield}.resources.requests",
                            "Invalid value",
                            f"must be less than or equal to {name} limit of {limits[name]}",
                            value,
                        )
                    )
    return out


def template_errors(template: Obj, field: str) -> list[FieldError]:
    meta = template.get("metadata") or {}
    return (
        label_errors(meta.get("labels"), f"{field}.metadata.labels")
        + annotation_errors(meta.get("annotations"), f"{field}.metadata.annotations")
        + pod_spec_errors(template.get("spec") or {}, f"{field}.spec")
    )


def job_errors(job: Obj) -> list[FieldError]:
    spec = job.get("spec") or {}
    out: list[FieldError] = []
    name = (job.get("metadata") or {}).get("name", "")
    if len(name) > 63:
        # The Job controller labels its pods with the Job's name (batch.kubernetes.io/job-name), a label value.
        out.append(
            FieldError("spec.template.labels", "Invalid value", "must be no more than 63 characters", name)
        )
    for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds"):
        value = spec.get(key)
        if isinstance(value, int) and value < (1 if key == "activeDeadlineSeconds" else 0):
            bound = "greater than 0" if key == "activeDeadlineSeconds" else "greater than or equal to 0"
            out.append(FieldError(f"spec.{key}", "Invalid value", f"must be {bound}", value))
    if spec.get("completionMode") == "Indexed":
        completions = spec.get("completions")
        if completions is None:
            out.append(FieldError("spec.completions", "Required value", "when completion mode is Indexed"))
        elif completions > INDEXED_MAX:
            out.append(
                FieldError(
                    "spec.completions",
                    "Invalid value",
                    f"must be less than or equal to {INDEXED_MAX} when completion mode is Indexed",
                    completions,
                )
            )
        if (spec.get("parallelism") or 0) > INDEXED_MAX:
            out.append(
                FieldError(
                    "spec.parallelism",
                    "Invalid value",
                    f"must be less than or equal to {INDEXED_MAX} when completion mode is Indexed",
                    spec.get("parallelism"),
                )
            )
    elif spec.get("completionMode") not in (None, "NonIndexed"):
        out.append(
            FieldError(
                "spec.completionMode",
                "Unsupported value",
                'supported values: "NonIndexed", "Indexed"',
                spec.get("completionMode"),
            )
        )
    template = spec.get("template") or {}
    policy = (template.get("spec") or {}).get("restartPolicy") or "Always"  # the pod default, applied first
    if policy not in ("OnFailure", "Never"):
        out.append(
            FieldError(
                "spec.template.spec.restartPolicy",
                "Unsupported value",
                'supported values: "OnFailure", "Never"',
                policy,
            )
        )
    return out + template_errors(template, "spec.template")


_JOB_MUTABLE = {"parallelism", "suspend", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "backoffLimit"}
_JOB_MUTABLE_WHILE_SUSPENDED = ("nodeSelector", "tolerations", "schedulingGates")


def job_update_errors(old: Obj, new: Obj) -> list[FieldError]:
    """Job spec immutability: only what the real API server lets change (1.27+ rules)."""
    o, n = old.get("spec") or {}, new.get("spec") or {}
    out: list[FieldError] = []
    for key in sorted(set(o) | set(n)):
        if key in _JOB_MUTABLE or o.get(key) == n.get(key):
            continue
        if (
            key == "completions"
            and n.get("completionMode") == "Indexed"
            and n.get("completions") == n.get("parallelism")
        ):
            continue  # elastic Indexed Job: completions may change together with parallelism
        if key == "template" and _template_change_allowed(old, o.get(key) or {}, n.get(key) or {}):
            continue
        out.append(FieldError(f"spec.{key}", "Invalid value", "field is immutable", n.get(key)))
    return out


def _template_change_allowed(old_job: Obj, old: Obj, new: Obj) -> bool:
    """A suspended Job that never started may change its template's scheduling directives, labels, annotations."""
    if not (old_job.get("spec") or {}).get("suspend") or (old_job.get("status") or {}).get("startTime"):
        return False
    o_spec, n_spec = dict(old.get("spec") or {}), dict(new.get("spec") or {})
    for key in _JOB_MUTABLE_WHILE_SUSPENDED:
        o_spec.pop(key, None)
        n_spec.pop(key, None)
    n_spec["affinity"] = (n_spec.get("affinity") or {}) and {
        k: v for k, v in (n_spec.get("affinity") or {}).items() if k != "nodeAffinity"
    }
    o_spec["affinity"] = (o_spec.get("affinity") or {}) and {
        k: v for k, v in (o_spec.get("affinity") or {}).items() if k != "nodeAffinity"
    }
    return o_spec == n_spec


def _selector_matches(selector: Obj, labels: Obj) -> bool:
    """matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist) against a label map."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def workload_errors(obj: Obj, old: Obj | None) -> list[FieldError]:
    """Deployments, ReplicaSets, StatefulSets, DaemonSets: a selector that selects the template, immutable."""
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    out = template_errors(template, "spec.template")
    selector = spec.get("selector")
    if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        out.append(FieldError("spec.selector", "Required value", ""))
    elif not _selector_matches(selector, (template.get("metadata") or {}).get("labels") or {}):
        out.append(
            FieldError(
                "spec.template.metadata.labels",
                "Invalid value",
                "`selector` does not match template `labels`",
                (template.get("metadata") or {}).get("labels") or {},
            )
        )
    if old is not None and (old.get("spec") or {}).get("selector") != selector:
        out.append(FieldError("spec.selector", "Invalid value", "field is immutable", selector))
    return out
