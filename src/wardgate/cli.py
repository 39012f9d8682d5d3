"""The `wardgate` command."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml

from wardgate import __version__
from wardgate.errors import InputError, Problem
from wardgate.perf import no_gc_pauses
from wardgate.sources import load_paths
from wardgate.sources.files import MAX_FILE_BYTES

# The pipeline's stages are imported by the commands that use them: `wardgate migrate` and
# `wardgate echo` start a third of a second sooner without translate, render and the data plane.

app = typer.Typer(no_args_is_help=True, add_completion=False, help="A Gateway API security gateway on nginx.")
verify_app = typer.Typer(no_args_is_help=True, help="Run corpora against a real wardgate gateway.")
app.add_typer(verify_app, name="verify")

Files = Annotated[list[Path], typer.Option("-f", "--file", help="Manifest file or directory (repeatable).")]
OUTPUT_FORMATS = ("table", "yaml", "json")
_UNITS = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}


def _byte_size(text: str | int) -> int:
    """`8MiB`, `512k` or plain bytes."""
    if isinstance(text, int):  # the default
        return text
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    if m is None or m.group(2).lower() not in _UNITS or int(m.group(1)) <= 0:
        raise typer.BadParameter(f"{text!r} is not a size such as 8MiB, 512KiB or 1048576")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


MaxFileSize = Annotated[int, typer.Option(
    "--max-file-size", parser=_byte_size, metavar="SIZE",
    help=f"Refuse manifest files larger than this (e.g. 16MiB; default {MAX_FILE_BYTES >> 20}MiB).")]


def _fail_input(exc: InputError) -> None:
    typer.echo(f"error: {len(exc.problems)} problem(s) in the input:", err=True)
    for p in exc.problems:
        typer.echo(f"  {p}", err=True)
    raise typer.Exit(2)


def _status_doc(paths: list[Path], address: str, max_file_size: int) -> dict[str, Any]:
    from wardgate.model import parse
    from wardgate.translate import Options, translate

    tr = translate(parse(load_paths(paths, max_bytes=max_file_size)), Options(addresses=(address,)))
    return {"objects": [s.to_dict() for s in tr.statuses], "errors": [],
            "warnings": [str(p) for p in tr.problems]}


def _print(doc: dict[str, Any], output: str) -> None:
    if output == "json":
        typer.echo(json.dumps(doc, indent=1, sort_keys=True))
    elif output == "yaml":
        typer.echo(yaml.safe_dump(doc, sort_keys=False))
    else:
        from wardgate.status.report import format_table

        typer.echo(format_table(doc))


@app.command()
def version() -> None:
    """Print wardgate's version."""
    typer.echo(__version__)


@app.command()
def validate(files: Files, max_file_size: MaxFileSize = MAX_FILE_BYTES) -> None:
    """Check manifests without running anything; exit 2 on invalid input."""
    from wardgate.model import parse
    from wardgate.translate import translate
    from wardgate.translate.conditions import unmet

    try:
        rs = parse(load_paths(files, max_bytes=max_file_size))
    except InputError as exc:
        _fail_input(exc)
        return
    tr = translate(rs)
    problems = [str(p) for p in tr.problems]
    for p in problems:
        typer.echo(f"warning: {p}", err=True)
    # What the Gateways' and routes' status would say, unless a problem above says it already:
    # a listener without its certificate, a route whose backend is missing.
    for st in tr.statuses:
        if st.kind in ("Gateway", "HTTPRoute", "GRPCRoute", "TLSRoute"):
            for where, c in unmet(st):
                if not any(c.message in p for p in problems):
                    typer.echo(f"warning: {where}: {c.type} {c.status} ({c.reason}): {c.message}", err=True)
    typer.echo(f"ok: {len(rs.objects)} objects, {len(tr.gateways)} gateway(s) to serve")


@app.command("render")
def render_cmd(
    files: Files,
    out: Annotated[Path, typer.Option("-o", "--output-dir", help="Directory to write into.")],
    listen_host: Annotated[str, typer.Option(help="Address nginx listens on.")] = "127.0.0.1",
    port_offset: Annotated[int, typer.Option(help="Listener port p binds p+N.")] = 0,
    max_file_size: MaxFileSize = MAX_FILE_BYTES,
) -> None:
    """Write each Gateway's nginx files to OUT/<namespace>_<name>/ without running anything."""
    from wardgate.dataplane.nginx import write_private
    from wardgate.model import parse
    from wardgate.render.nginx import RenderOptions, render
    from wardgate.translate import Options, translate

    try:
        tr = translate(parse(load_paths(files, max_bytes=max_file_size)), Options(addresses=(listen_host,)))
    except InputError as exc:
        _fail_input(exc)
        return
    for p in tr.problems:
        typer.echo(f"warning: {p}", err=True)
    for gw in tr.gateways:
        target = out / f"{gw.namespace}_{gw.name}"
        for runtime in ("logs", "run", "tmp"):  # so `nginx -t -p TARGET/ -c TARGET/nginx.conf` works
            (target / runtime).mkdir(parents=True, exist_ok=True)
        for rel, text in render(gw, RenderOptions(listen_host, port_offset)).items():
            path = target / rel
            if rel.startswith("certs/"):  # key material: private from the first byte
                write_private(path, text.encode())
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        typer.echo(f"{gw.key}: {target}/nginx.conf")


@app.command()
def status(
    files: Annotated[list[Path] | None, typer.Option("-f", "--file", help="Compute status from manifests.")]
    = None,
    admin: Annotated[str | None, typer.Option(help="Read status from a running `wardgate run`, e.g. "
                                                   "http://127.0.0.1:9901")] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="table, yaml or json")] = "table",
    listen_host: Annotated[str, typer.Option(help="Address reported for Gateways (with -f).")] = "127.0.0.1",
    max_file_size: MaxFileSize = MAX_FILE_BYTES,
) -> None:
    """Print the status conditions of GatewayClasses, Gateways and HTTPRoutes."""
    if output not in OUTPUT_FORMATS:
        raise typer.BadParameter(f"-o must be one of {', '.join(OUTPUT_FORMATS)}")
    if admin:
        with urllib.request.urlopen(admin.rstrip("/") + "/status", timeout=10) as resp:
            doc = json.loads(resp.read())
    elif files:
        try:
            doc = _status_doc(files, listen_host, max_file_size)
        except InputError as exc:
            _fail_input(exc)
            return
    else:
        raise typer.BadParameter("give -f FILE... or --admin URL")
    _print(doc, output)
    if doc.get("errors"):
        raise typer.Exit(1)


@app.command()
def exposure(
    files: Files,
    output: Annotated[str, typer.Option("-o", "--output", help="table or json")] = "table",
    max_file_size: MaxFileSize = MAX_FILE_BYTES,
) -> None:
    """What each Gateway serves (listener, hostname, path, route), flagging hostnames served by
    several Gateways and routes reached through a wildcard broader than their hostname."""
    from wardgate.model import parse
    from wardgate.status.report import format_exposure
    from wardgate.translate import translate
    from wardgate.translate.exposure import exposure_of

    if output not in ("table", "json"):
        raise typer.BadParameter("-o must be table or json")
    try:
        tr = translate(parse(load_paths(files, max_bytes=max_file_size)))
    except InputError as exc:
        _fail_input(exc)
        return
    for p in tr.problems:
        typer.echo(f"warning: {p}", err=True)
    doc = exposure_of(tr)
    typer.echo(json.dumps(doc, indent=1) if output == "json" else format_exposure(doc))


@app.command("migrate")
def migrate_cmd(
    files: Annotated[list[str], typer.Option(
        "-f", "--file", help="Manifest file or directory (repeatable); - reads stdin.")],
    out: Annotated[Path | None, typer.Option(
        "-o", "--output-dir", help="Write <namespace>.yaml files and report.{txt,json} here.")] = None,
    report: Annotated[str, typer.Option("--report", help="Report format on stderr: table or json.")] = "table",
    strict: Annotated[bool, typer.Option(help="Exit 1 unless every finding is exact.")] = False,
    gateway: Annotated[list[str] | None, typer.Option(
        "--gateway", metavar="CLASS=NS/NAME", help="Put this class's routes on this Gateway (repeatable).")] = None,
    gateway_class: Annotated[str, typer.Option(help="gatewayClassName of the Gateways.")] = "wardgate",
    configmap: Annotated[list[str] | None, typer.Option(
        "--configmap", metavar="CLASS=NS/NAME", help="This class's controller ConfigMap (repeatable).")] = None,
    default_certificate: Annotated[str | None, typer.Option(
        "--default-certificate", metavar="NS/NAME",
        help="The TLS Secret for hosts without their own (ingress-nginx's --default-ssl-certificate).")] = None,
    max_file_size: MaxFileSize = MAX_FILE_BYTES,
) -> None:
    """Convert ingress-nginx Ingresses to Gateway API resources and wardgate policies (docs/migration.md)."""
    _migrate(files, out, report, strict, gateway, gateway_class, configmap, default_certificate, max_file_size)


# One pass over the input with nothing cyclic worth collecting: the collector's scans of the
# growing heap are pure cost, for the whole command.
@no_gc_pauses
def _migrate(files: list[str], out: Path | None, report: str, strict: bool, gateway: list[str] | None,
             gateway_class: str, configmap: list[str] | None, default_certificate: str | None,
             max_file_size: int) -> None:
    from wardgate.sources.files import load_bytes
    from wardgate.sources.parallel import Loading

    if report not in ("table", "json"):
        raise typer.BadParameter("--report must be table or json")
    paths = [Path(f) for f in files if f != "-"]
    try:
        # a helper process parses (a share of) large inputs while the converter is imported
        loading = Loading(paths, max_file_size) if paths else None
    except InputError as exc:
        _fail_input(exc)
        return
    from wardgate.migrate import MigrateOptions, migrate
    from wardgate.migrate.classes import parse_mapping
    from wardgate.migrate.render_report import to_json, to_table

    try:
        gws = parse_mapping(gateway or [], "--gateway")
        cms = parse_mapping(configmap or [], "--configmap")
        cert = None
        if default_certificate is not None:
            cert_ns, slash, cert_name = default_certificate.partition("/")
            if not slash or not cert_ns or not cert_name:
                raise ValueError(f"--default-certificate {default_certificate!r}: expected NAMESPACE/NAME")
            cert = (cert_ns, cert_name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        objects = []
        if "-" in files:
            data = sys.stdin.buffer.read(max_file_size + 1)
            if len(data) > max_file_size:
                raise InputError([Problem(f"more than {max_file_size} bytes on stdin (--max-file-size)")])
            objects += load_bytes(data, "<stdin>")
        if loading is not None:
            objects += loading.result()
    except InputError as exc:
        _fail_input(exc)
        return
    result = migrate(objects, MigrateOptions(tuple(gws), tuple(cms), gateway_class, cert))
    if out is None:
        sys.stdout.write(result.yaml())
        sys.stderr.write(to_json(result.report) if report == "json" else to_table(result.report))
    else:
        out.mkdir(parents=True, exist_ok=True)
        written = result.files()
        for name, content in written.items():
            (out / name).write_text(content)
        typer.echo(f"wrote {len(result)} objects in {len(written) - 2} file(s) to {out}; "
                   f"report in {out / 'report.txt'}", err=True)
    global _done_with_heap
    _done_with_heap = True
    if strict and not result.report.exact:
        raise typer.Exit(1)


@app.command()
def run(
    files: Files,
    listen_host: Annotated[str, typer.Option(help="Address nginx listens on.")] = "127.0.0.1",
    port_offset: Annotated[int, typer.Option(help="Listener port p binds p+N (e.g. 8000 without root).")]
    = 0,
    state_dir: Annotated[Path, typer.Option(help="Where nginx configs, logs and status live.")]
    = Path(".wardgate"),
    admin_port: Annotated[int, typer.Option(help="Admin endpoint port on 127.0.0.1 (0 = any).")] = 9901,
    address_pool: Annotated[str | None, typer.Option(
        help="Give each Gateway its own address from this CIDR, e.g. 127.0.100.0/24.")] = None,
    workers: Annotated[int | None, typer.Option(help="nginx worker processes (default: one per core).")]
    = None,
    nginx: Annotated[str, typer.Option(help="nginx binary.")] = "nginx",
    max_file_size: MaxFileSize = MAX_FILE_BYTES,
    admin_allow_host: Annotated[list[str] | None, typer.Option(
        "--admin-allow-host", metavar="HOST",
        help="Also accept this Host header on the admin port (repeatable); 127.0.0.1, localhost "
             "and ::1 always are.")] = None,
) -> None:
    """Run one nginx per Gateway, reload on file changes, serve admin endpoints."""
    import faulthandler

    from wardgate.runner import Runner, RunnerOptions

    faulthandler.enable()  # a crash in C code still leaves a traceback on stderr
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runner = Runner(files, state_dir.absolute(), RunnerOptions(listen_host, port_offset, nginx,
                                                               worker_processes=workers,
                                                               address_pool=address_pool,
                                                               max_file_bytes=max_file_size))
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        logging.getLogger("wardgate").info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        runner.serve(stop, admin_port=admin_port, admin_allowed_hosts=tuple(admin_allow_host or ()))
    except Exception:  # serve() logged it and stopped nginx: exit non-zero for the supervisor
        raise typer.Exit(1) from None


@app.command()
def echo(
    listen: Annotated[str, typer.Option(help="host:port to serve on.")] = "127.0.0.1:3000",
    namespace: Annotated[str, typer.Option(help="Reported as `namespace`.")] = "default",
    pod: Annotated[str, typer.Option(help="Reported as `pod`.")] = "echo-0",
    service: Annotated[str, typer.Option(help="Reported as `service`.")] = "",
    certfile: Annotated[Path | None, typer.Option(help="Serve HTTPS with this certificate (PEM).")] = None,
    keyfile: Annotated[Path | None, typer.Option(help="The certificate's private key (PEM).")] = None,
    client_ca: Annotated[Path | None, typer.Option(help="Ask for client certificates signed by this CA.")]
    = None,
    quiet: Annotated[bool, typer.Option(help="Do not log a line per request.")] = False,
) -> None:
    """A test backend that answers every request with a JSON echo of it (docs/echo.md)."""
    from wardgate.verify.echo import main as echo_main

    host, _, port = listen.rpartition(":")
    args = ["--host", host.strip("[]") or "127.0.0.1", "--port", port, "--namespace", namespace, "--pod", pod,
            "--service", service]
    for flag, path in (("--certfile", certfile), ("--keyfile", keyfile), ("--client-ca", client_ca)):
        if path is not None:
            args += [flag, str(path)]
    raise typer.Exit(echo_main([*args, *(["--quiet"] if quiet else [])]))


@verify_app.command("conformance")
def verify_conformance(
    corpus: Annotated[Path, typer.Option(help="Corpus directory (FORMAT.md of the conformance corpus).")],
    only: Annotated[list[str] | None, typer.Option(help="Run only these tests (repeatable).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
    usable_address: Annotated[list[str] | None, typer.Option(
        help="An address for PLACEHOLDER_USABLE_ADDRS in test Gateways (repeatable).")] = None,
    unusable_address: Annotated[list[str] | None, typer.Option(
        help="An address for PLACEHOLDER_UNUSABLE_ADDRS in test Gateways (repeatable).")] = None,
) -> None:
    """Run a Gateway API conformance corpus against a real wardgate gateway."""
    from wardgate.verify.conformance import ConformanceOptions, run_conformance

    doc = run_conformance(ConformanceOptions(corpus=corpus, only=list(only or []),
                                             usable_addresses=list(usable_address or []),
                                             unusable_addresses=list(unusable_address or [])))
    if json_out:
        json_out.write_text(json.dumps(doc, indent=1))
    s = doc["summary"]
    raise typer.Exit(0 if s["fail"] == 0 else 1)


@verify_app.command("waf")
def verify_waf(
    corpus: Annotated[Path, typer.Option(help="A .jsonl file or a directory of them (FORMAT.md of the WAF corpus).")],
    paranoia: Annotated[int, typer.Option(min=1, max=4, help="CRS paranoia level.")] = 1,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Requests in flight.")] = 4,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
    routes: Annotated[Literal["defaults", "documented"], typer.Option(
        help="defaults: the WAF as it comes; documented: plus the per-route settings docs/policies.md recommends "
             "(GraphQL, Markdown, uninspected types), each on its own route by path.")] = "defaults",
) -> None:
    """Replay a WAF corpus through a real wardgate gateway with the WAF blocking; report the rates."""
    from rich.progress import Progress

    from wardgate.verify.waf import format_table
    from wardgate.verify.waf_gateway import WafRun

    try:
        with Progress(transient=True) as bar:
            task = bar.add_task("replaying", total=None)
            doc = WafRun(corpus, paranoia, workers, routes=routes,
                         progress=lambda done, total: bar.update(task, completed=done, total=total)).run()
    except InputError as exc:
        _fail_input(exc)
    if json_out:
        json_out.write_text(json.dumps(doc, indent=1))
    typer.echo(format_table(doc))
    typer.echo(f"{doc['seconds']} s, paranoia level {paranoia}, routes {routes}")


@verify_app.command("migration")
def verify_migration(
    cases: Annotated[Path, typer.Option(help="A migration corpus (docs/migration-cases.md): its root or its "
                                             "cases/ folder.")],
    only: Annotated[list[str] | None, typer.Option(help="Run only this case id (repeatable).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
    migrated: Annotated[Path | None, typer.Option(
        help="Serve DIR/<case id>.yaml (migration output you wrote or edited) instead of running "
             "`wardgate migrate` on each case.")] = None,
    min_pass: Annotated[float, typer.Option(
        min=0, max=100, help="Exit 0 when at least this percentage of the cases pass.")] = 100.0,
    port_offset: Annotated[int | None, typer.Option(
        help="Listener port p binds p+N (default: 0 as root, else 20000).")] = None,
) -> None:
    """Migrate each case's Ingresses, run the result on real Gateways with echo backends, send the
    case's requests and compare the answers with ingress-nginx's. Exit 1 when fewer than
    --min-pass percent of the cases pass (by default: when any case fails or errors)."""
    from wardgate.verify.migration import MigrationVerifyOptions, run_migration_verify

    try:
        doc = run_migration_verify(MigrationVerifyOptions(cases=cases, only=list(only or []), migrated=migrated,
                                                          port_offset=port_offset),
                                   out=typer.echo)
    except InputError as exc:
        _fail_input(exc)
        return
    if json_out:
        json_out.write_text(json.dumps(doc, indent=1))
    s = doc["summary"]
    total = s["pass"] + s["fail"] + s["error"]
    raise typer.Exit(0 if total and 100.0 * s["pass"] / total >= min_pass else 1)


@app.command("diff")
def diff_cmd(
    old: Annotated[str, typer.Option(help="The gateway being replaced, e.g. http://10.0.0.5 or https://10.0.0.5:8443.")],
    new: Annotated[str, typer.Option(help="The new gateway, in the same form.")],
    requests: Annotated[Path, typer.Option(
        help="JSON lines {method, path, host, headers, body}, or an access log in ingress-nginx's default format.")],
    host: Annotated[str | None, typer.Option(
        help="Host header for lines that have none (ingress-nginx's default access log never has one).")] = None,
    header: Annotated[list[str] | None, typer.Option(
        "--header", metavar="NAME", help="Compare this response header (repeatable; replaces the default set). "
                                         "Location is always compared.")] = None,
    ignore_body: Annotated[bool, typer.Option(
        help="Do not compare body hashes (bodies that carry request ids or times always differ).")] = False,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Requests in flight (1 keeps the file's order).")] = 1,
    all_methods: Annotated[bool, typer.Option(
        help="Also replay methods other than GET, HEAD and OPTIONS (each is sent twice: to old and new).")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every difference here as JSON.")] = None,
) -> None:
    """Replay requests against the old and the new gateway and print what differs (status, Location,
    response headers, body hash). Exit 1 when anything differs."""
    from wardgate.verify.migration_diff import DEFAULT_HEADERS, SAFE_METHODS, load_requests, parse_target, run_diff

    try:
        targets = parse_target(old), parse_target(new)
        loaded, skipped = load_requests(requests, host)
    except InputError as exc:
        _fail_input(exc)
        return
    for where in skipped:
        typer.echo(f"skipped {where}: its request line is not an HTTP request", err=True)
    if not all_methods:
        unsafe = [r for r in loaded if r.method not in SAFE_METHODS]
        for r in unsafe:
            typer.echo(f"skipped {r.where}: {r.method} may change state and would run twice (--all-methods "
                       "replays it)", err=True)
        loaded = [r for r in loaded if r.method in SAFE_METHODS]
    doc = run_diff(*targets, loaded, header_names=list(header) if header else list(DEFAULT_HEADERS),
                   bodies=not ignore_body, workers=workers, out=typer.echo)
    if json_out:
        json_out.write_text(json.dumps(doc, indent=1))
    raise typer.Exit(1 if doc["differ"] else 0)


@app.command()
def decisions(
    state_dir: Annotated[Path, typer.Option(help="The state directory of `wardgate run`.")] = Path(".wardgate"),
    gateway: Annotated[str | None, typer.Option(help="Only this Gateway (namespace/name).")] = None,
    last: Annotated[int, typer.Option("-n", "--last", min=1, help="Entries per Gateway, newest last.")] = 20,
) -> None:
    """Print the decision log as JSON lines, with the WAF's rule ids joined in (`waf_rules`)."""
    from wardgate.status.decisions import decisions as read_decisions
    from wardgate.status.decisions import gateway_logs

    logs = gateway_logs(state_dir)
    if gateway is not None:
        if gateway not in logs:
            typer.echo(f"error: no Gateway {gateway} under {state_dir} (have: {', '.join(logs) or 'none'})", err=True)
            raise typer.Exit(2)
        logs = {gateway: logs[gateway]}
    for key, path in logs.items():
        for entry in read_decisions(path, last):
            typer.echo(json.dumps({"gateway": key, **entry}, sort_keys=False))


@app.command()
def crds(
    output_dir: Annotated[Path | None, typer.Option("-o", "--output-dir", help="Write one file per CRD here "
                                                    "(default: all to stdout).")] = None,
) -> None:
    """Print the CustomResourceDefinitions of wardgate's policy kinds."""
    from wardgate.model.crds import all_crds

    docs = all_crds()
    if output_dir is None:
        typer.echo("---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs.values()), nl=False)
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, doc in docs.items():
        (output_dir / name).write_text("# Generated by `wardgate crds`; do not edit.\n"
                                       + yaml.safe_dump(doc, sort_keys=False))
        typer.echo(f"wrote {output_dir / name}")


# Set by a command once all its output is written: the process may end without freeing its heap
# object by object (after `wardgate migrate` on 5,000 Ingresses that took 0.3 s).
_done_with_heap = False


def main() -> None:
    try:
        app()
    except BrokenPipeError:  # e.g. `wardgate status | head`
        sys.exit(0)
    except SystemExit as exc:
        if _done_with_heap and (exc.code is None or isinstance(exc.code, int)):
            with contextlib.suppress(OSError):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(exc.code or 0)
        raise


if __name__ == "__main__":
    main()
