"""Data plane: run nginx for one Gateway, and the admin endpoints around it."""

from wardgate.dataplane.admin import AdminServer, GatewayState, readiness
from wardgate.dataplane.nginx import ApplyResult, NginxInstance, clean_nginx_output, nginx_version

__all__ = [
    "AdminServer",
    "ApplyResult",
    "GatewayState",
    "NginxInstance",
    "clean_nginx_output",
    "nginx_version",
    "readiness",
]
