"""Test support for the client library's tests: daemons that come back where they were,
and servers that answer badly.

A client is built once with the daemon's address; to see it recover, the daemon must
come back on the same ports, so `restart_on_same_ports` writes the ports the first
run bound (ephemeral ones) into the config before starting it again.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Any, Iterator
import yaml

from daemonkit import Daemon, DaemonFactory


def restart_on_same_ports(factory: DaemonFactory, daemon: Daemon) -> Daemon:
    """Start the stopped `daemon` again with the same config, state and ports."""
    config = yaml.safe_load(daemon.config_path.read_text())
    config["http"]["listen"] = daemon.bound["http"][0]
    config["dns"]["listen"] = [daemon.bound["dns_udp"][0]]
    daemon.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    return factory.restart(daemon)


def registration(path: Path, text: str) -> None:
    """Drop a registration file in one step, as `cp` into services.d would."""
    staging = path.with_name("." + path.name + ".tmp")
    staging.write_text(text)
    staging.replace(path)


@contextlib.contextmanager
def serving(server: http.server.ThreadingHTTPServer) -> Iterator[int]:
    """`server` answering in a thread for the block: its port; shut down and closed after."""
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def tls_server(cert: Path, key: Path, body: bytes) -> Iterator[str]:
    """An https server that answers every GET as pilotfish would: JSON `body` and the index header."""

    class Pilotfishy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Pilotfish-Index", "7")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pilotfishy)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with serving(server) as port:
        yield f"https://127.0.0.1:{port}"


@contextlib.contextmanager
def html_server() -> Iterator[str]:
    """Some other web server on the daemon's address: 200 and an HTML page for everything."""

    class Html(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>welcome</html>")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)) as port:
        yield f"http://127.0.0.1:{port}"


class DripServer:
    """Accepts connections and sends an HTTP status line, then one byte every `every`
    seconds, for ever: what a client without a deadline over the whole exchange hangs on."""

    def __init__(self, every: float = 0.05) -> None:
        self.every = every
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> DripServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._acceptor.join(5)
        for thread in self._threads:
            thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.sendall(b"HTTP/1.0 200 OK\r\n")
                while not self._stop.wait(self.every):
                    conn.sendall(b"X")
            except OSError:
                return


def elapsed(since: float) -> float:
    return time.monotonic() - since
