"""A `php:apache` container, emulated: one Apache + mod_php instance per container definition.

The lab reads the same container definitions (/etc/ha-web-cluster/containers/*.env) the
Docker hosts get; only this stand-in for `docker run` is lab-specific.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..render.plan import NodePlan

STOP_SIGNAL = signal.SIGWINCH  # php:apache's STOPSIGNAL: what `docker stop` sends (Apache's graceful stop)
STOP_TIMEOUT = 10.0  # then `docker stop` kills, as processes.stop does
# The image's Apache comes from Debian (php:apache is built on Debian's apache2), so the stand-in
# takes its prefork pool from the same package here: 5 started, 5-10 spare, 150 at most. A pool
# of its own once had 2-4 spares: a burst after a Docker host's power-off waited for Apache to
# spawn children (one cycle a second) and a request ran into HAProxy's 3 s `timeout server`.
PREFORK_CONF = "/etc/apache2/mods-available/mpm_prefork.conf"
ROLE_PREFIX = "container:"  # a container's role in the lab's process records
PID_FILE = "/run/apache2-{name}.pid"  # in the Docker host's private /run

APACHE_CONF = """# ha-web-cluster lab: stand-in for container {name} (docker run -p {bind}:{port}:80 -v {docroot}:/var/www {image}; /var/www/html -> current)
ServerRoot /etc/apache2
ServerName {name}
Listen {bind}:{port}
PidFile {pid_file}
Mutex file:/run
User www-data
Group www-data
LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule env_module /usr/lib/apache2/modules/mod_env.so
LoadModule php_module /usr/lib/apache2/modules/libphp8.2.so
TypesConfig /etc/mime.types
# php:apache's worker pool and keep-alive: Debian's own prefork file and apache2.conf's values
Include {prefork_conf}
Timeout 300
KeepAlive On
MaxKeepAliveRequests 100
KeepAliveTimeout 5
ErrorLog {log}
LogLevel warn
DocumentRoot {docroot}/html
DirectoryIndex index.php index.html
SetEnv CONTAINER_NAME {name}
<FilesMatch "\\.php$">
    SetHandler application/x-httpd-php
</FilesMatch>
<Directory {docroot}>
    Options FollowSymLinks
    Require all granted
</Directory>
"""


@dataclass(frozen=True)
class ContainerDef:
    name: str
    image: str
    bind: str
    host_port: int
    docroot: str
    storage: str


def container_defs(plan: NodePlan) -> list[ContainerDef]:
    """Parse the node's rendered container definitions (KEY=VALUE files)."""
    out = []
    for path in sorted(plan.files):
        if path.startswith("/etc/ha-web-cluster/containers/") and path.endswith(".env"):
            kv = dict(
                line.split("=", 1)
                for line in str(plan.files[path].content).splitlines()
                if "=" in line and not line.startswith("#")
            )
            out.append(ContainerDef(kv["NAME"], kv["IMAGE"], kv["BIND"], int(kv["HOST_PORT"]), kv["DOCROOT"], kv["STORAGE"]))
    return out


def apache_conf(c: ContainerDef, log: Path) -> str:
    return APACHE_CONF.format(name=c.name, bind=c.bind, port=c.host_port, docroot=c.docroot, image=c.image, log=log,
                              pid_file=pid_path(c.name), prefork_conf=PREFORK_CONF)


def pid_path(container: str) -> str:
    """Where a container's Apache writes its PID (inside its Docker host)."""
    return PID_FILE.format(name=container)


def role(container: str) -> str:
    """The lab's process role of a container."""
    return f"{ROLE_PREFIX}{container}"


def container_of(role_name: str) -> Optional[str]:
    """The container a process role stands for; None for a daemon."""
    return role_name.removeprefix(ROLE_PREFIX) if role_name.startswith(ROLE_PREFIX) else None
