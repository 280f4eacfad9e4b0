"""A contractor's bastion for the maintenance tunnel's tests: a real OpenSSH server on 127.0.0.1 and
a free port, with its own host key and config, where the box's key is restricted exactly as
appliance/maintenance/README.md tells the contractor (port forwarding to one loopback port, no
shell, no command); and a TCP echo server standing for the box's own sshd."""

from __future__ import annotations

import getpass
import socket
import socketserver
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from servers import free_port, listening, wait_for

SSHD = "/usr/sbin/sshd"
BOX_BANNER = b"SSH-2.0-box-stand-in\r\n"


def make_key(path: Path, comment: str) -> str:
    """An ed25519 key pair at `path`; its public line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return Path(f"{path}.pub").read_text().strip()


def restricted_line(public_key: str, remote_port: int) -> str:
    """The authorized_keys line of the README for the box's key."""
    options = (
        f'restrict,port-forwarding,permitlisten="127.0.0.1:{remote_port}",permitopen="127.0.0.1:1",command="/bin/false"'
    )
    return f"{options} {public_key}"


@dataclass
class Bastion:
    folder: Path
    box_public_key: str
    remote_port: int
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=getpass.getuser)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.host_key = self.folder / "host_key"
        host_public = make_key(self.host_key, "bastion")
        self.known_hosts = self.folder / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_public}\n")
        self.authorized_keys = self.folder / "authorized_keys"
        self.authorized_keys.write_text(restricted_line(self.box_public_key, self.remote_port) + "\n")
        self.config = self.folder / "sshd_config"
        self.config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\nPidFile {self.folder / 'sshd.pid'}\n"
            "UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\nClientAliveInterval 2\nClientAliveCountMax 2\n"
            "LogLevel VERBOSE\n"
        )
        self.log = self.folder / "sshd.log"

    def start(self) -> Bastion:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stderr=log)
        wait_for(lambda: listening(self.port), "the bastion's sshd")
        return self

    def stop(self) -> None:
        """Stop the listener and every session it forked."""
        if self.process is None:
            return
        for session in self.sessions():
            session.kill()
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process = None

    def sessions(self) -> list[Any]:
        """The per-connection sshd processes (the listener's children)."""
        if self.process is None or self.process.poll() is not None:
            return []
        return list(psutil.Process(self.process.pid).children(recursive=False))

    def forwarding(self) -> bool:
        """Whether the box's forward listens on the bastion's loopback."""
        return listening(self.remote_port)


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(BOX_BANNER)
        while data := self.request.recv(4096):
            self.request.sendall(data)


class BoxStandIn:
    """A TCP server on 127.0.0.1 answering a banner then echoing: the box's sshd for the tunnel."""

    def __init__(self) -> None:
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> BoxStandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def through_tunnel(port: int, payload: bytes = b"hello box\n") -> bytes:
    """Connect to the bastion's forwarded port, read the banner, send `payload`: what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        received = b""
        while len(received) < len(BOX_BANNER) + len(payload):
            if len(received) == len(BOX_BANNER):
                connection.sendall(payload)
            chunk = connection.recv(4096)
            if not chunk:
                break
            received += chunk
        return received
