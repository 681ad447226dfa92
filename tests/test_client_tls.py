"""The client over https (a daemon behind a TLS proxy): certificates are verified.

The certificate is made for the test by the openssl command; a client that does not
trust it refuses the server (no answer, so the fallback chain), and one told to
trust it (SSL_CERT_FILE, which OpenSSL's default paths read) gets the answer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clientkit import tls_server
from conftest import REPO
from resolver.client import AsyncDiscovery, DaemonUnavailable, Discovery

INSTANCE = {"id": "redis-6379", "name": "redis", "node": "n1", "address": "10.0.0.5", "port": 6379,
            "protocol": "redis", "url": "redis://10.0.0.5:6379", "status": "passing"}
BODY = json.dumps([INSTANCE]).encode()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed: no certificate to serve https with")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def test_an_untrusted_certificate_is_no_answer(certificate: tuple[Path, Path]) -> None:
    import asyncio

    with tls_server(*certificate, BODY) as url:
        client = Discovery(url, dns="127.0.0.1:9", dns_timeout=0.2)
        with pytest.raises(DaemonUnavailable) as caught:
            client.instances("redis")
        assert "CERTIFICATE_VERIFY_FAILED" in caught.value.reason
        with pytest.raises(DaemonUnavailable) as caught:
            asyncio.run(AsyncDiscovery(url, dns="127.0.0.1:9", dns_timeout=0.2).instances("redis"))
        assert "CERTIFICATE_VERIFY_FAILED" in caught.value.reason


def test_a_trusted_certificate_serves_both_flavours(certificate: tuple[Path, Path]) -> None:
    program = (
        "import asyncio, sys\n"
        "from resolver.client import AsyncDiscovery, Discovery\n"
        "print(Discovery(sys.argv[1]).url('redis').url)\n"
        "print(asyncio.run(AsyncDiscovery(sys.argv[1]).instances('redis')).source.value)\n"
    )
    with tls_server(*certificate, BODY) as url:
        done = subprocess.run(
            [sys.executable, "-c", program, url], capture_output=True, text=True, timeout=60, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), "SSL_CERT_FILE": str(certificate[0])},
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["redis://10.0.0.5:6379", "daemon"]
