"""Label and field selectors, parsed once per request.

Label selectors follow the real grammar: equality (``a=b``, ``a==b``, ``a!=b``), set-based
(``a in (x,y)``, ``a notin (x)``), existence (``a``, ``!a``). Field selectors support equality
and inequality on the fields the real server indexes for the types the product uses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .status import bad_request

_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|[^\s!=(),]+)")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        # "!=" and "notin" match objects without the label, as in Kubernetes.
        return value is None or value not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def equalities(self) -> list[tuple[str, str]]:
        """(key, value) pairs every match must carry: usable with a label index."""
        return [
            (r.key, r.values[0])
            for r in self.requirements
            if r.op in ("=", "in") and len(r.values) == 1
        ]

    @property
    def empty(self) -> bool:
        return not self.requirements


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise bad_request(f"unable to parse requirement: {text!r}")
        out.append(match.group(1))
        pos = match.end()
    return out


def parse_label_selector(text: str | None) -> LabelSelector:
    if not text or not text.strip():
        return LabelSelector()
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    i = 0

    def fail(why: str) -> Exception:
        return bad_request(f"unable to parse requirement: {why} in label selector {text!r}")

    while i < len(tokens):
        tok = tokens[i]
        if tok == "!":
            if i + 1 >= len(tokens):
                raise fail("missing key after '!'")
            requirements.append(Requirement(tokens[i + 1], "!"))
            i += 2
        else:
            key = tok
            if key in ("=", "==", "!=", "(", ")", ","):
                raise fail(f"unexpected {key!r}")
            nxt = tokens[i + 1] if i + 1 < len(tokens) else ","
            if nxt in ("=", "==", "!="):
                if i + 2 >= len(tokens) or tokens[i + 2] in (",", "(", ")"):
                    # "a=" selects the empty value.
                    requirements.append(Requirement(key, "!=" if nxt == "!=" else "=", ("",)))
                    i += 2
                else:
                    requirements.append(
                        Requirement(key, "!=" if nxt == "!=" else "=", (tokens[i + 2],))
                    )
                    i += 3
            elif nxt in ("in", "notin"):
                if i + 2 >= len(tokens) or tokens[i + 2] != "(":
                    raise fail(f"expected '(' after {nxt}")
                j = i + 3
                values: list[str] = []
                while j < len(tokens) and tokens[j] != ")":
                    if tokens[j] != ",":
                        values.append(tokens[j])
                    j += 1
                if j >= len(tokens):
                    raise fail("missing ')'")
                requirements.append(Requirement(key, nxt, tuple(values)))
                i = j + 1
            else:
                requirements.append(Requirement(key, "exists"))
                i += 1
        if i < len(tokens):
            if tokens[i] != ",":
                raise fail(f"unexpected {tokens[i]!r}")
            i += 1
    return LabelSelector(tuple(requirements))


def selector_from_match(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` (matchLabels/matchExpressions) as a parsed selector."""
    if not selector:
        return LabelSelector()
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append(
            Requirement(expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ()))
        )
    return LabelSelector(tuple(reqs))


# Field selectors ---------------------------------------------------------------------------

_FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "metadata.name": ("metadata", "name"),
    "metadata.namespace": ("metadata", "namespace"),
    "status.phase": ("status", "phase"),
    "spec.nodeName": ("spec", "nodeName"),
    "spec.restartPolicy": ("spec", "restartPolicy"),
    "spec.serviceAccountName": ("spec", "serviceAccountName"),
    "status.podIP": ("status", "podIP"),
    "type": ("type",),
    "involvedObject.name": ("involvedObject", "name"),
    "involvedObject.namespace": ("involvedObject", "namespace"),
    "involvedObject.kind": ("involvedObject", "kind"),
    "involvedObject.uid": ("involvedObject", "uid"),
    "reason": ("reason",),
    "status.successful": ("status", "succeeded"),
}


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[tuple[str, str, str], ...] = ()  # (field, op, value)

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for fieldname, op, value in self.requirements:
            actual = _field_value(obj, fieldname)
            if (actual == value) != (op == "="):
                return False
        return True

    def name(self) -> str | None:
        """The single name asked for by ``metadata.name=X``, if any."""
        for fieldname, op, value in self.requirements:
            if fieldname == "metadata.name" and op == "=":
                return value
        return None

    @property
    def empty(self) -> bool:
        return not self.requirements


def _field_value(obj: Mapping[str, Any], fieldname: str) -> str:
    cur: Any = obj
    for part in _FIELD_PATHS[fieldname]:
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(part)
    return "" if cur is None else str(cur)


def parse_field_selector(text: str | None, *, kind: str = "") -> FieldSelector:
    if not text or not text.strip():
        return FieldSelector()
    out: list[tuple[str, str, str]] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        for op, sep in (("!=", "!="), ("=", "=="), ("=", "=")):
            if sep in part:
                fieldname, value = part.split(sep, 1)
                out.append((fieldname.strip(), op, value.strip()))
                break
        else:
            raise bad_request(f"invalid selector: '{part}'; can't understand '{part}'")
        fieldname = out[-1][0]
        if fieldname not in _FIELD_PATHS:
            raise bad_request(
                f'field label not supported: "{fieldname}"'
                + (f" for {kind}" if kind else "")
                + f" (the sandbox supports {', '.join(sorted(_FIELD_PATHS))})"
            )
    return FieldSelector(tuple(out))
