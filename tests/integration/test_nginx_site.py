"""The role web's nginx site, rendered from its template and run for real (on free loopback ports)
in front of the real `appliance-web`, with the certificates `appliance tls ensure` made: HTTPS
answers with a certificate that verifies against the box's CA, plain HTTP serves only the CA and
redirects the rest (first-boot setup included)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import jinja2
import pytest
from servers import Daemon, archive_config, free_port, wait_for_port, write_config

ROLE = Path(__file__).parents[2] / "ansible/roles/web"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(not os.access(NGINX, os.X_OK), reason="nginx is not installed (make debian-packages)")


def render_site(tls_directory: Path, upstream: int, http_port: int, https_port: int) -> str:
    """The template as Ansible renders it, with the role's defaults but test ports and paths."""
    template = (ROLE / "templates/etc/nginx/sites-available/appliance.conf.j2").read_text()
    return jinja2.Template(template, undefined=jinja2.StrictUndefined).render(
        ansible_managed="test",
        web_upstream_port=upstream,
        web_http_port=http_port,
        web_https_port=https_port,
        web_tls_directory=str(tls_directory),
        web_client_max_body_size="2g",
    )


def main_configuration(folder: Path, site: Path) -> str:
    """A minimal nginx.conf around the site, everything under `folder` (no root needed)."""
    temporary = " ".join(
        f"{kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root root;" if os.geteuid() == 0 else ""
    return (
        f"{user} worker_processes 1; pid {folder / 'nginx.pid'}; error_log {folder / 'error.log'};\n"
        f"events {{ worker_connections 64; }}\n"
        f"http {{ access_log off; {temporary} include {site}; }}\n"
    )


@pytest.fixture()
def box(tmp_path: Path) -> Iterator[dict[str, int]]:
    """appliance-web, its certificates, and nginx in front: the ports to reach them."""
    web_port, http_port, https_port = free_port(), free_port(), free_port()
    web = {"bind_address": "127.0.0.1", "port": web_port, "workers": 1, "threads": 2}
    config_path = write_config(tmp_path / "appliance.yaml", archive_config(tmp_path / "data", free_port(), web=web))
    made = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "tls", "ensure", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    daemon = Daemon("appliance.daemons.web", config_path, tmp_path / "web.log").start()
    site = tmp_path / "site.conf"
    site.write_text(render_site(tmp_path / "tls", web_port, http_port, https_port))
    conf = tmp_path / "nginx.conf"
    conf.write_text(main_configuration(tmp_path, site))
    checked = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    nginx = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"], start_new_session=True)
    try:
        wait_for_port(https_port, "nginx", nginx)
        yield {"http": http_port, "https": https_port}
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=30)
        daemon.stop()


def box_ca_context(tls_directory: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(tls_directory / "ca.crt"))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context


def test_https_answers_with_a_certificate_the_box_ca_verifies(tmp_path: Path, box: dict[str, int]) -> None:
    connection = http.client.HTTPSConnection("127.0.0.1", box["https"], context=box_ca_context(tmp_path / "tls"))
    connection.request("GET", "/login")
    answer = connection.getresponse()
    assert answer.status == 200 and b"<title>Se connecter" in answer.read()
    assert connection.sock is not None and connection.sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[attr-defined]
    connection.close()


def test_http_serves_the_ca_and_redirects_the_rest(tmp_path: Path, box: dict[str, int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", box["http"])
    connection.request("GET", "/ca.crt")
    answer = connection.getresponse()
    assert answer.status == 200 and answer.read() == (tmp_path / "tls" / "ca.crt").read_bytes()
    assert answer.getheader("Content-Type") == "application/x-x509-ca-cert"
    connection.request("GET", "/setup?step=1")
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 301 and answer.getheader("Location") == "https://127.0.0.1/setup?step=1"
    connection.close()
