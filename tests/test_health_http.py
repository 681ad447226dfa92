"""HTTP checks against a real aiohttp server that fails, hangs, redirects and goes away."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

from aiohttp import web

from conftest import eventually, run, started, status_of
from healthkit import SLACK, HttpService, register, serve_handler, wait_status
from registry.catalog import Catalog
from registry.health.runner import HealthRunner
from registry.model import Status

INTERVAL, TIMEOUT = 1.0, 0.5  # the timeout leaves a loaded machine time to answer
WITHIN = INTERVAL + TIMEOUT + SLACK


def http_body(instance_id: str, url: str, **check: object) -> dict[str, object]:
    spec: dict[str, object] = {"http": url, "interval": "1s", "timeout": "500ms"}
    spec.update(check)
    return {"id": instance_id, "name": "web", "port": 8080, "protocol": "http", "checks": [spec]}


def output_of(catalog: Catalog, instance_id: str) -> str:
    entry = catalog.current.entry(instance_id)
    assert entry is not None
    return entry.checks[0].output


def test_http_500_hang_redirect_and_down_each_show_within_deadline(catalog: Catalog) -> None:
    failures = {"500": "500 Internal Server Error", "hang": "timed out after 0.5s", "redirect": "302 Found"}

    async def scenario() -> None:
        # One service per failure, all failing at once: each shows within one deadline.
        services = {mode: await HttpService().up() for mode in failures}
        runner = HealthRunner(catalog)
        await runner.start()

        async def all_status(status: Status) -> None:
            await eventually(lambda: all(status_of(catalog, f"web-{m}") is status for m in failures), WITHIN, f"all {status}")

        try:
            for mode, service in services.items():
                register(catalog, {**http_body(f"web-{mode}", service.url), "port": service.port})
            await all_status(Status.PASSING)
            for mode, service in services.items():
                service.mode = mode
            await all_status(Status.CRITICAL)
            for mode, needle in failures.items():
                assert needle in output_of(catalog, f"web-{mode}")
            for service in services.values():
                service.mode = "ok"
            await all_status(Status.PASSING)
            await services["500"].down()
            await wait_status(catalog, "web-500", Status.CRITICAL, WITHIN)
            await services["500"].up()
            await wait_status(catalog, "web-500", Status.PASSING, WITHIN)
        finally:
            await runner.stop()
            for service in services.values():
                await service.down()
        transitions = [e.detail["to"] for e in reversed(catalog.store.events(kind="health")) if e.subject == "web-500"]
        assert transitions == ["passing", "critical"] * 2 + ["passing"]

    run(scenario())


def test_expected_status_list_headers_method_body_and_429(tmp_path: Path, catalog: Catalog) -> None:
    async def scenario() -> None:
        service = await HttpService().up()
        async with started(HealthRunner(catalog)):
            try:
                # A redirect that is expected passes: redirects are judged, not followed.
                register(catalog, http_body("moved", service.url, status=[301, 302]))
                register(
                    catalog,
                    {
                        **http_body("probe", service.url, method="HEAD", headers={"X-Check": "pilotfish"}),
                        "id": "probe",
                        "port": 8081,
                    },
                )
                register(catalog, {**http_body("marker", service.url, body="all good"), "port": 8082})
                service.mode = "redirect"
                await wait_status(catalog, "moved", Status.PASSING, WITHIN)
                service.mode = "ok"
                await wait_status(catalog, "probe", Status.PASSING, WITHIN)
                heads = [headers for method, headers in service.requests if method == "HEAD"]
                assert heads and all(headers.get("X-Check") == "pilotfish" for headers in heads)
                await wait_status(catalog, "marker", Status.PASSING, WITHIN)
                service.body = "degraded"
                await wait_status(catalog, "marker", Status.CRITICAL, WITHIN)
                assert "body lacks 'all good'" in output_of(catalog, "marker")
                service.mode = "429"
                await wait_status(catalog, "probe", Status.WARNING, WITHIN)
            finally:
                await service.down()

    run(scenario())


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def test_tls_skip_verify(tmp_path: Path, catalog: Catalog) -> None:
    async def scenario() -> None:
        web_runner, url = await serve_handler("/health", _ok, _self_signed(tmp_path))
        async with started(HealthRunner(catalog)):
            try:
                register(catalog, http_body("strict", url))
                register(catalog, {**http_body("lenient", url, tls_skip_verify=True), "port": 8081})
                await wait_status(catalog, "lenient", Status.PASSING, WITHIN)
                await eventually(lambda: "certificate" in output_of(catalog, "strict").lower(), WITHIN, "verify failure")
                await wait_status(catalog, "strict", Status.CRITICAL, 0)
            finally:
                await web_runner.cleanup()

    run(scenario())


def test_body_marker_found_past_the_first_chunk(catalog: Catalog) -> None:
    # A status page streamed in parts: the marker is in the body, just not in its first read.
    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"<html>" + b" " * 2000)
        await asyncio.sleep(0.02)
        await response.write(b'"status":"ok"</html>')
        await response.write_eof()
        return response

    async def scenario() -> None:
        web_runner, url = await serve_handler("/health", streamed)
        async with started(HealthRunner(catalog)):
            try:
                register(catalog, http_body("streamed", url, body='"status":"ok"'))
                await eventually(lambda: "200" in output_of(catalog, "streamed"), WITHIN, "a first result")
                await wait_status(catalog, "streamed", Status.PASSING, 0)
            finally:
                await web_runner.cleanup()

    run(scenario())


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")
