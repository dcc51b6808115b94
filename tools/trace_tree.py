"""Traces as trees: X-Ray segments and OTLP spans in one form, grouped, linked and drawn.

Both SDKs' output becomes `SpanRecord`s with X-Ray ids (`1-<8 hex>-<24 hex>` trace ids,
16-hex span ids), so a trace whose frontend used one SDK and whose backend used the other is
one tree: the backend's server span names the frontend's client span as its parent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

KINDS = {
    Span.SPAN_KIND_SERVER: "server",
    Span.SPAN_KIND_CLIENT: "client",
    Span.SPAN_KIND_INTERNAL: "internal",
    Span.SPAN_KIND_PRODUCER: "producer",
    Span.SPAN_KIND_CONSUMER: "consumer",
}


@dataclass
class SpanRecord:
    trace_id: str
    id: str
    parent_id: str | None
    service: str
    name: str
    kind: str
    start: float
    end: float | None
    sdk: str
    status: int | None = None
    error: bool = False
    fault: bool = False
    annotations: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start


def _target(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def from_xray(documents: Iterable[dict[str, Any]]) -> list[SpanRecord]:
    """Segments and their subsegments (nested, or streamed on their own) as records."""
    records: list[SpanRecord] = []

    def add(doc: dict[str, Any], parent: str | None, service: str, top: bool) -> None:
        http = doc.get("http", {})
        request = http.get("request", {})
        status = http.get("response", {}).get("status")
        if top and doc.get("type") != "subsegment":
            kind = "server"
            name = f"{request.get('method', '')} {_target(request.get('url', ''))}".strip()
        elif doc.get("namespace") == "remote":
            kind = "client"
            name = f"{request.get('method', '')} {request.get('url', doc['name'])}".strip()
        else:
            kind = "internal"
            name = doc["name"]
        records.append(
            SpanRecord(
                trace_id=doc["trace_id"],
                id=doc["id"],
                parent_id=parent,
                service=service,
                name=name or doc["name"],
                kind=kind,
                start=float(doc["start_time"]),
                end=float(doc["end_time"]) if "end_time" in doc else None,
                sdk="xray-sdk",
                status=status,
                error=bool(doc.get("error")),
                fault=bool(doc.get("fault")),
                annotations=dict(doc.get("annotations", {})),
            )
        )
        for child in doc.get("subsegments", []):
            add({**child, "trace_id": doc["trace_id"]}, doc["id"], service, False)

    for document in documents:
        streamed = document.get("type") == "subsegment"
        add(
            document,
            document.get("parent_id"),
            "" if streamed else document["name"],
            not streamed,
        )
    return records


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, which) if which else None


def from_otlp(requests: Iterable[ExportTraceServiceRequest]) -> list[SpanRecord]:
    """Every span of these export requests as a record, with X-Ray-form ids."""
    records: list[SpanRecord] = []
    for request in requests:
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            service = str(resource.get("service.name", "?"))
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    records.append(_otlp_record(span, service))
    return records


def _otlp_record(span: Span, service: str) -> SpanRecord:
    attributes = {a.key: _value(a.value) for a in span.attributes}
    kind = KINDS.get(span.kind, "internal")
    status = attributes.get("http.response.status_code", attributes.get("http.status_code"))
    failed = span.status.code == Status.STATUS_CODE_ERROR
    fault = failed and (status is None or int(status) >= 500)
    error = failed and not fault
    if kind == "client":
        method = attributes.get("http.request.method", attributes.get("http.method", ""))
        url = attributes.get("url.full", attributes.get("http.url", span.name))
        name = f"{method} {url}".strip()
    elif kind == "server":
        method = attributes.get("http.request.method", attributes.get("http.method", ""))
        target = (
            attributes.get("http.target")
            or _target(str(attributes.get("http.url", "")))
            or str(attributes.get("url.path", ""))
            + (f"?{attributes['url.query']}" if attributes.get("url.query") else "")
        )
        name = f"{method} {target}".strip() or span.name
    else:
        name = span.name
    listed = attributes.get("aws.xray.annotations") or []
    hex_trace = span.trace_id.hex()
    return SpanRecord(
        trace_id=f"1-{hex_trace[:8]}-{hex_trace[8:]}",
        id=span.span_id.hex(),
        parent_id=span.parent_span_id.hex() or None,
        service=service,
        name=name,
        kind=kind,
        start=span.start_time_unix_nano / 1e9,
        end=span.end_time_unix_nano / 1e9 if span.end_time_unix_nano else None,
        sdk="opentelemetry",
        status=int(status) if status is not None else None,
        error=error,
        fault=fault,
        annotations={k: attributes[k] for k in listed if k in attributes},
    )


def group(records: Iterable[SpanRecord]) -> dict[str, list[SpanRecord]]:
    """Records by trace id, in order of arrival of each trace's first record."""
    grouped: dict[str, list[SpanRecord]] = {}
    for record in records:
        grouped.setdefault(record.trace_id, []).append(record)
    return grouped


@dataclass
class Node:
    record: SpanRecord
    children: list[Node] = field(default_factory=list)


def tree(records: list[SpanRecord]) -> list[Node]:
    """The roots of one trace (a record whose parent is not in the trace is a root), children
    by start time; a streamed subsegment takes the service of its parent."""
    nodes = {r.id: Node(r) for r in records}
    roots: list[Node] = []
    for node in nodes.values():
        parent = nodes.get(node.record.parent_id or "")
        if parent is None:
            roots.append(node)
        else:
            parent.children.append(node)

    def settle(node: Node, service: str) -> None:
        if not node.record.service:
            node.record.service = service
        node.children.sort(key=lambda n: n.record.start)
        for child in node.children:
            settle(child, node.record.service)

    roots.sort(key=lambda n: n.record.start)
    for root in roots:
        settle(root, "?")
    return roots


def services(roots: list[Node]) -> list[str]:
    """The services of a trace in the order a request reaches them, with their SDKs."""
    seen: list[str] = []

    def walk(node: Node) -> None:
        label = f"{node.record.service} [{node.record.sdk}]"
        if label not in seen:
            seen.append(label)
        for child in node.children:
            walk(child)

    for root in roots:
        walk(root)
    return seen


def render(records: list[SpanRecord], width: int = 20) -> list[str]:
    """One trace as a waterfall: offset from the trace's start, duration, service, span,
    status and flags, and a bar of where the span sits in the trace's time."""
    roots = tree(records)
    start = min(r.start for r in records)
    end = max((r.end or r.start) for r in records)
    total = max(end - start, 1e-9)
    lines = [
        f"trace {records[0].trace_id}  {' -> '.join(services(roots))}"
        f"  {total * 1000:.2f} ms, {len(records)} spans"
    ]

    def bar(record: SpanRecord) -> str:
        left = min(round((record.start - start) / total * width), width - 1)
        right = round(((record.end or end) - start) / total * width)
        right = max(right, left + 1)
        return "|" + " " * left + "#" * (right - left) + " " * (width - right) + "|"

    def walk(node: Node, prefix: str, last: bool, depth: int) -> None:
        record = node.record
        branch = "" if depth == 0 else prefix + ("`- " if last else "|- ")
        annotations = " ".join(
            str(v) if record.kind == "client" else f"{k}={v}" for k, v in record.annotations.items()
        )
        label = f"{branch}{record.name}" + (f" ({annotations})" if annotations else "")
        duration = f"{record.duration * 1000:7.2f}" if record.duration is not None else "   open"
        flags = " fault" if record.fault else " error" if record.error else ""
        status = str(record.status) if record.status is not None else "-"
        lines.append(
            f"  {(record.start - start) * 1000:+7.2f} {duration} ms  {record.service:<10.10}"
            f" {label[:58]:<58} {status:>3}{flags:<6} {bar(record)}"
        )
        child_prefix = "" if depth == 0 else prefix + ("   " if last else "|  ")
        for index, child in enumerate(node.children):
            walk(child, child_prefix, index == len(node.children) - 1, depth + 1)

    for root in roots:
        walk(root, "", True, 0)
    return lines
