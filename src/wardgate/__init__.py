"""wardgate: a Kubernetes Gateway API security gateway on nginx."""

__version__ = "0.1.0"

CONTROLLER_NAME = "wardgate.io/gateway-controller"
