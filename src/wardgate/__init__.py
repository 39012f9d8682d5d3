"""wardgate: a Kubernetes Gateway API security gateway on nginx."""

__version__ = "0.1.0"

CONTROLLER_NAME = "wardgate.io/gateway-controller"

# The composition root: the model validates user strings through the data plane's grammar,
# which it never imports (see wardgate/validation.py).
from wardgate import quoting as _quoting  # noqa: E402
from wardgate import validation as _validation  # noqa: E402

_validation.install(_quoting.Grammar())
