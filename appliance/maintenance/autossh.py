"""The autossh command that makes the tunnel: a reverse forward from the bastion's loopback
(`remote_port`) to the box's own SSH server, nothing else (no shell, no command: `-N`).

- `ExitOnForwardFailure=yes`: a bastion refusing the forward (port taken, permitlisten) ends ssh,
  and autossh tries again, rather than a connection that forwards nothing.
- `ServerAliveInterval` / `ServerAliveCountMax=3`: a dead link is noticed within about three
  intervals, ssh exits, autossh starts a new one (`-M 0`: no monitoring port, ssh's own
  keep-alives do the work). `AUTOSSH_GATETIME=0`: a failure of the very first connection is
  retried too (the bastion may be unreachable at the moment the tunnel is opened).
- The bastion's host key is pinned: `StrictHostKeyChecking=yes` against the known_hosts file of
  the configuration only (`GlobalKnownHostsFile=/dev/null`, `-F none`: no ssh_config of the
  system or the account), never updated. Only the box's own key, no agent, no password.
- Every path is absolute (autossh and ssh are started from the service's working directory).
"""

from __future__ import annotations

import os

from appliance.config import MaintenanceConfig

ALIVE_COUNT = 3
CONNECT_TIMEOUT_SECONDS = 15


def command(maintenance: MaintenanceConfig) -> list[str]:
    """autossh's argument vector for `maintenance`."""
    options = {
        "BatchMode": "yes",
        "ExitOnForwardFailure": "yes",
        "ServerAliveInterval": str(maintenance.alive_interval_seconds),
        "ServerAliveCountMax": str(ALIVE_COUNT),
        "ConnectTimeout": str(CONNECT_TIMEOUT_SECONDS),
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(maintenance.known_hosts_file.absolute()),
        "GlobalKnownHostsFile": "/dev/null",
        "UpdateHostKeys": "no",
        "IdentityFile": str(maintenance.key_file.absolute()),
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
        "ForwardAgent": "no",
        "ForwardX11": "no",
        "PermitLocalCommand": "no",
    }
    forward = f"127.0.0.1:{maintenance.remote_port}:127.0.0.1:{maintenance.box_port}"
    arguments = [maintenance.autossh, "-M", "0", "-F", "none", "-N", "-T"]
    for name, value in options.items():
        arguments += ["-o", f"{name}={value}"]
    return [*arguments, "-p", str(maintenance.bastion_port), "-R", forward,
            f"{maintenance.bastion_user}@{maintenance.bastion_host}"]  # fmt: skip


def environment(lifetime_seconds: int) -> dict[str, str]:
    """autossh's environment: retry from the first failure, and end by itself after
    `lifetime_seconds` (the opening's end: a backstop should the process watching it die). autossh
    logs to syslog (the journal on the box); ssh's own errors go to standard error."""
    kept = {name: value for name, value in os.environ.items() if name in ("PATH", "LANG", "TZ")}
    return {
        **kept,
        "AUTOSSH_GATETIME": "0",
        "AUTOSSH_LOGLEVEL": "6",
        "AUTOSSH_MAXLIFETIME": str(max(1, lifetime_seconds)),
    }
