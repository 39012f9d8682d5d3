"""Which ingress class an Ingress belongs to, which controller ConfigMap each class used, and which
Gateway(s) each class becomes.

ingress-nginx facts (internal/ingress/controller/store, the Helm chart):
- an Ingress's class is spec.ingressClassName, else the legacy annotation kubernetes.io/ingress.class;
  without either, the API server gave it the default IngressClass at creation (DefaultIngressClass
  admission), so an exported Ingress without class is one created before a default existed and no
  controller serves it (unless --watch-ingress-without-class);
- an Ingress naming a class no IngressClass defines is served by nobody;
- the Helm chart installs release R with controller class k8s.io/R (k8s.io/ingress-nginx by default)
  and its ConfigMap R/R-controller... except that the namespace is the release's namespace, which for
  the usual `helm install R -n R` is R as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from wardgate.migrate.ingress import Ingress, IngressClass, Inputs
from wardgate.migrate.report import Finding

CONTROLLER_PREFIX = "k8s.io/ingress-nginx"


@dataclass(frozen=True)
class GatewayRef:
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class ClassInfo:
    """One ingress class being migrated."""

    name: str
    controller: str
    configmap: tuple[str, str] | None  # (namespace, name) of its controller ConfigMap
    configmap_how: str  # how the ConfigMap was chosen, for the report
    config: Mapping[str, str]  # its data ({} when it is not in the input)
    config_found: bool
    gateways: tuple[GatewayRef, ...]
    gateways_how: str
    # ingress-nginx's --default-ssl-certificate (or --default-certificate): the certificate of
    # hosts without their own, on an HTTPS listener without hostname
    default_certificate: tuple[str, str] | None = None


@dataclass
class ClassPlan:
    classes: dict[str, ClassInfo] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def parse_mapping(items: Sequence[str], what: str) -> list[tuple[str, str, str]]:
    """`CLASS=NS/NAME` options as (class, namespace, name); ValueError naming the bad one."""
    out: list[tuple[str, str, str]] = []
    for item in items:
        cls, eq, target = item.partition("=")
        ns, slash, name = target.partition("/")
        if not eq or not slash or not cls or not ns or not name:
            raise ValueError(f"{what} {item!r}: expected CLASS=NAMESPACE/NAME")
        out.append((cls, ns, name))
    return out


def class_of(ing: Ingress, classes: Mapping[str, IngressClass]) -> tuple[str | None, str]:
    """(class name or None, why) for one Ingress."""
    if ing.class_name:
        return ing.class_name, "spec.ingressClassName"
    if ing.legacy_class:
        return ing.legacy_class, "annotation kubernetes.io/ingress.class"
    defaults = sorted(c.name for c in classes.values() if c.is_default)
    if len(defaults) == 1:
        return defaults[0], f"default IngressClass {defaults[0]}"
    if len(defaults) > 1:
        return None, f"several default IngressClasses ({', '.join(defaults)}): the API server refuses such an Ingress"
    return None, "no class and no default IngressClass: no controller serves it"


def _helm_configmap(controller: str) -> tuple[str, str] | None:
    _, slash, release = controller.partition("k8s.io/")
    if not slash or not release or "/" in release:
        return None
    return release, f"{release}-controller"


def plan_classes(inputs: Inputs, used: Sequence[str], *, gateway_opts: Sequence[tuple[str, str, str]],
                 configmap_opts: Sequence[tuple[str, str, str]],
                 default_certificate: tuple[str, str] | None = None) -> ClassPlan:
    """ClassInfo for every class in `used` (the classes Ingresses name), with the report's
    findings for the choices that need a word."""
    plan = ClassPlan()
    cm_opt = {c: (ns, n) for c, ns, n in configmap_opts}
    gw_opt: dict[str, list[GatewayRef]] = {}
    for c, ns, n in gateway_opts:
        ref = GatewayRef(ns, n)
        if ref not in gw_opt.setdefault(c, []):
            gw_opt[c].append(ref)
    for name in sorted(set(used)):
        ic = inputs.classes.get(name)
        controller = ic.controller if ic else ""
        ctl = next((c for c in inputs.controllers
                    if (controller and c.controller_class == controller) or c.ingress_class == name), None)
        if not controller and ctl is not None:
            controller = ctl.controller_class
        if not controller:
            controller = CONTROLLER_PREFIX  # no IngressClass in the input: assume the default install
        cm: tuple[str, str] | None
        if name in cm_opt:
            cm, how = cm_opt[name], "--configmap"
            if ctl is not None and ctl.configmap and ctl.configmap != cm:
                plan.findings.append(Finding(ctl.file, f"Deployment {ctl.namespace}/{ctl.name}", "--configmap",
                                             "converted-with-difference",
                                             f"class {name}: --configmap {cm[0]}/{cm[1]} used instead of the "
                                             f"Deployment's {ctl.configmap[0]}/{ctl.configmap[1]}", name))
        elif ctl is not None and ctl.configmap:
            cm, how = ctl.configmap, f"--configmap argument of Deployment {ctl.namespace}/{ctl.name}"
        elif ctl is not None:
            cm, how = None, f"Deployment {ctl.namespace}/{ctl.name} has no --configmap: ingress-nginx defaults"
        else:
            cm = _helm_configmap(controller)
            how = f"Helm chart naming for controller {controller}" if cm else \
                f"controller {controller!r} does not follow the Helm naming: defaults (use --configmap)"
        data = inputs.configmaps.get(cm) if cm else None
        if cm and data is None:
            how += f" (ConfigMap {cm[0]}/{cm[1]} is not in the input: ingress-nginx defaults assumed)"
        if name in gw_opt:
            gws, gw_how = tuple(gw_opt[name]), "--gateway"
        else:
            ns = ctl.namespace if ctl is not None else (cm[0] if cm else "default")
            gws = (GatewayRef(ns, name),)
            gw_how = "default: Gateway named after the class in the controller's namespace"
        cert = default_certificate or (ctl.default_certificate if ctl is not None else None)
        plan.classes[name] = ClassInfo(name, controller, cm, how, dict(data.data) if data else {},
                                       data is not None, gws, gw_how, cert)
    return plan


def is_ingress_nginx(controller: str, inputs: Inputs) -> bool:
    """Whether a controller string belongs to an ingress-nginx install."""
    return controller.startswith(CONTROLLER_PREFIX) or any(c.controller_class == controller
                                                           for c in inputs.controllers)
