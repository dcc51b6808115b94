"""A stand-in for the X-Ray daemon's UDP side, on loopback: it decodes what the SDK sends.

Every datagram is a header line `{"format":"json","version":1}`, a newline, and one JSON
trace document: a segment, or a subsegment streamed on its own (`"type": "subsegment"`).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

PROTOCOL_HEADER = {"format": "json", "version": 1}
MAX_DATAGRAM = 65535


class DecodeError(ValueError):
    """A datagram that does not follow the daemon's protocol."""


def decode_datagram(data: bytes) -> dict[str, Any]:
    header, newline, body = data.partition(b"\n")
    if not newline:
        raise DecodeError("no header line")
    try:
        header_doc = json.loads(header)
    except ValueError as error:
        raise DecodeError(f"header is not JSON: {header[:80]!r}") from error
    if header_doc != PROTOCOL_HEADER:
        raise DecodeError(f"unsupported header {header_doc!r}")
    try:
        document = json.loads(body)
    except ValueError as error:
        raise DecodeError(f"document is not JSON: {body[:80]!r}") from error
    if not isinstance(document, dict):
        raise DecodeError(f"document is a {type(document).__name__}, not an object")
    for key in ("trace_id", "id", "name", "start_time"):
        if key not in document:
            raise DecodeError(f"document has no {key!r}")
    return document


@dataclass
class SegmentReceiver:
    """Receives and decodes datagrams on a loopback UDP port in a background thread."""

    host: str = "127.0.0.1"
    port: int = 0
    documents: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._socket, self._tcp_guard = self._bind()
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self._stopping = threading.Event()
        self._arrived = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="segment-receiver", daemon=True)

    def _bind(self) -> tuple[socket.socket, socket.socket | None]:
        """The UDP socket, and a TCP socket bound (not listening) to the same port number.

        The SDK asks the daemon's TCP port for sampling rules: holding that port unlistened
        makes those calls fail at once, and keeps any other local server from answering them.
        """
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, self.port))
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.bind((self.host, udp.getsockname()[1]))
            except OSError:
                tcp.close()
                if self.port:
                    return udp, None
                udp.close()
                continue
            return udp, tcp
        raise OSError("no free port number for both UDP and TCP on loopback")

    @property
    def address(self) -> str:
        """The value for AWS_XRAY_DAEMON_ADDRESS."""
        return f"{self.host}:{self.port}"

    def start(self) -> SegmentReceiver:
        self._thread.start()
        return self

    def __enter__(self) -> SegmentReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._socket.close()
        if self._tcp_guard is not None:
            self._tcp_guard.close()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                data = self._socket.recv(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._arrived:
                try:
                    self.documents.append(decode_datagram(data))
                except DecodeError as error:
                    self.errors.append(str(error))
                self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """The documents received so far, once there are `count` of them or `timeout` passed."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.documents) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.wait(remaining)
            return list(self.documents)

    def settle(self, quiet: float = 0.2, timeout: float = 3.0) -> list[dict[str, Any]]:
        """The documents received once nothing has arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            seen = -1
            while seen != len(self.documents) and time.monotonic() < deadline:
                seen = len(self.documents)
                self._arrived.wait(min(quiet, max(deadline - time.monotonic(), 0)))
            return list(self.documents)


def traces(documents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Documents grouped by trace id, in arrival order."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        grouped.setdefault(document["trace_id"], []).append(document)
    return grouped


def subsegment_names(document: dict[str, Any]) -> list[str]:
    """Names of the subsegments nested in a document, depth first, with their annotations."""
    names: list[str] = []
    for child in document.get("subsegments", []):
        annotations = ", ".join(f"{k}={v}" for k, v in child.get("annotations", {}).items())
        names.append(f"{child['name']}({annotations})" if annotations else child["name"])
        names.extend(subsegment_names(child))
    return names


def summarize(document: dict[str, Any]) -> str:
    """One line: trace id, segment name, request, status, duration, subsegments."""
    http = document.get("http", {})
    request = http.get("request", {})
    url = urlsplit(request.get("url", ""))
    target = url.path + (f"?{url.query}" if url.query else "")
    status = http.get("response", {}).get("status", "-")
    flags = "".join(f" [{flag}]" for flag in ("error", "fault", "throttle") if document.get(flag))
    end = document.get("end_time")
    duration = f"{(end - document['start_time']) * 1000:.2f} ms" if end else "in progress"
    subsegments = ", ".join(subsegment_names(document)) or "-"
    return (
        f"{document['trace_id']}  {document['name']}  {request.get('method', '-')} {target}"
        f"  {status}{flags}  {duration}  subsegments: {subsegments}"
    )
