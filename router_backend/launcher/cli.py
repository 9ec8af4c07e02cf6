"""The `pointsman` command.

    pointsman serve --http-port 8000            # tritonserver, and the HTTP gateway on 127.0.0.1:9000
    pointsman gateway --triton-grpc host:8001   # the gateway alone, in front of a remote Triton
    pointsman export --checkpoint ./my-gpt2 --name gpt2
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from pointsman.policy.admin import ADMIN_HEADER, ADMIN_KEY_ENV


class _Stop(Exception):
    """SIGTERM or SIGHUP reached serve: stop the server like Ctrl-C does."""


def _raise_stop(*_: object) -> None:
    raise _Stop


def _serve(args: argparse.Namespace) -> int:
    from pointsman.gateway.server import GatewayError
    from pointsman.launcher.tritonserver import ServerError, ServerPorts, TritonServer

    env = {}
    if args.database_url:
        from pointsman.ops.usage.storage import DATABASE_URL_ENV, is_postgres_url

        if not is_postgres_url(args.database_url):
            raise ValueError(f"invalid --database-url: must start with postgresql:// (got "
                             f"{args.database_url.split('://')[0]}://...)")
        env[DATABASE_URL_ENV] = args.database_url
    server = TritonServer(args.model_repository, host=args.host,
                          ports=ServerPorts(args.http_port, args.grpc_port, args.metrics_port),
                          admin_key=args.admin_key, env=env)
    gateways: list = []  # the gateway, once started
    # SIGTERM and SIGHUP (the server has its own session: the terminal's signals reach
    # only us) stop it as Ctrl-C does: SIGINT, a bounded wait, then every process it started
    for stopping in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stopping, _raise_stop)
    try:
        return _run(server, args, gateways)
    except KeyboardInterrupt:
        return 130
    except _Stop:  # a requested stop: a clean exit
        return 0
    except (ServerError, GatewayError) as exc:
        print(f"pointsman serve: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # the stops below are bounded
            signal.signal(signum, signal.SIG_IGN)
        for gateway in gateways:
            gateway.stop()
        server.stop()


def _run(server, args: argparse.Namespace, gateways: list) -> int:
    server.start()
    server.wait_ready(timeout=args.ready_timeout)
    gateway = None
    if not args.no_gateway:
        from pointsman.gateway.server import GatewayProcess

        gateway = GatewayProcess(server.grpc_url, host=args.gateway_host, port=args.gateway_port)
        gateways.append(gateway)
        gateway.start().wait_ready()
    base = f"http://{server.http_url}"
    print(  # noqa: T201
        f"\nPointsman is ready: HTTP {base}, gRPC {server.grpc_url}, "
        f"metrics http://{args.host}:{args.metrics_port}/metrics\n"
        f"Try:\n  curl -X POST {base}/v2/models/gpt2/generate "
        f"-d '{{\"text_input\":\"def add(a, b):\",\"max_tokens\":16}}'\n"
        f"  curl -X POST {base}/v2/models/router/generate "
        f"-d '{{\"text_input\":\"Write a poem about rain\",\"auto_select\":true}}'\n"
        f"  curl -N -X POST {base}/v2/models/router_stream/generate_stream "
        f"-d '{{\"text_input\":\"Tell me a story\",\"auto_select\":true,\"stream\":true}}'\n"
        f"  (router and gpt2 answer once, also over /infer and unary gRPC; stream from router_stream, gpt2_stream)\n",
        flush=True,
    )
    if gateway is not None:
        print(  # noqa: T201
            f"Gateway (OpenAI API and /inference): {gateway.url}\n"
            f"  curl {gateway.url}/v1/chat/completions -H 'Content-Type: application/json' "
            f"-d '{{\"model\":\"auto\",\"messages\":[{{\"role\":\"user\",\"content\":\"Write a poem\"}}]}}'\n",
            flush=True,
        )
    return _supervise(server, args.ready_timeout)


RESTARTS = 3  # crashes of tritonserver that serve restarts within RESTART_WINDOW_S before it gives up
RESTART_WINDOW_S = 600.0


def _supervise(server, ready_timeout: float) -> int:
    """Wait on tritonserver, and start it again when it dies unasked (a crash), a few times.

    Triton 2.51 can abort the whole server when a Python model's stub dies holding a
    shared-memory lock (docs/faults.md), so one broken model must not end the service.
    An exit with code 0 (someone stopped tritonserver itself) ends serve, as a stop does.
    """
    crashes: list[float] = []
    while True:
        code = server.process.wait()
        if code == 0:
            return 0
        now = time.monotonic()
        crashes = [t for t in crashes if now - t < RESTART_WINDOW_S] + [now]
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        if len(crashes) > RESTARTS:
            print(f"pointsman serve: tritonserver died ({how}) {len(crashes)} times in "  # noqa: T201
                  f"{RESTART_WINDOW_S:.0f} s; giving up", file=sys.stderr, flush=True)
            return code if code > 0 else 128 - code
        print(f"pointsman serve: tritonserver died ({how}); starting it again "  # noqa: T201
              f"({len(crashes)} of {RESTARTS} restarts in {RESTART_WINDOW_S:.0f} s)", file=sys.stderr, flush=True)
        server.stop()  # reaps the stubs it left behind
        server.start()
        server.wait_ready(timeout=ready_timeout)
        print("pointsman serve: tritonserver is ready again", file=sys.stderr, flush=True)  # noqa: T201


def _routing_flags(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """RoutingFlags from export's flags (None when none is given); a bad or missing one is a usage error naming it."""
    from pointsman.export.pipeline import RoutingFlags
    from pointsman.policy.catalog import CAPABILITIES
    from pointsman.policy.routing_metadata import parse_task_scores

    given = {"--task-scores": args.task_scores, "--capabilities": args.capabilities,
             "--quality-prior": args.quality_prior}
    if all(v is None for v in given.values()) and args.tokens_per_second_prior is None:
        return None
    missing = [flag for flag, value in given.items() if value is None]
    if missing:
        parser.error(f"{missing[0]} is required with the other routing flags "
                     f"(--task-scores, --capabilities, --quality-prior)")
    try:
        scores = parse_task_scores(args.task_scores)
    except ValueError as exc:
        parser.error(f"--task-scores: {exc}")
    capabilities = tuple(c.strip() for c in args.capabilities.split(",") if c.strip())
    if not capabilities or any(c not in CAPABILITIES for c in capabilities):
        parser.error(f"--capabilities: a comma-separated list of {', '.join(CAPABILITIES)} (got {args.capabilities!r})")
    if not 0.0 <= args.quality_prior <= 1.0:
        parser.error(f"--quality-prior: a number from 0 to 1 (got {args.quality_prior:g})")
    for flag, value in (("--tokens-per-second-prior", args.tokens_per_second_prior),
                        ("--time-to-first-token-prior", args.time_to_first_token_prior)):
        if value is not None and value <= 0:
            parser.error(f"{flag}: a number greater than 0 (got {value:g})")
    return RoutingFlags(scores, capabilities, args.quality_prior, args.tokens_per_second_prior,
                        args.time_to_first_token_prior)


def _export(args: argparse.Namespace) -> int:
    from pointsman.export.pipeline import export_model

    export_model(args.checkpoint, args.name, args.model_repository, force=args.force, dtype=args.dtype,
                 quantize=args.quantize, routing=_routing_flags(args, args.parser), kv_cache=args.kv_cache)
    return 0


def _demo_models(args: argparse.Namespace) -> int:
    from pointsman.export.demo_models import build_demo_models

    build_demo_models(args.build_dir, args.model_repository, force=args.force)
    return 0


def _build_classifier(args: argparse.Namespace) -> int:
    from pointsman.export.classifier import build_classifier

    build_classifier(args.model_repository, force=args.force)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pointsman", description="Multi-model LLM serving on Triton")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run tritonserver on the model repository (foreground)")
    serve.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--http-port", type=int, default=8000)
    serve.add_argument("--grpc-port", type=int, default=8001)
    serve.add_argument("--metrics-port", type=int, default=8002)
    serve.add_argument("--ready-timeout", type=float, default=300.0)
    serve.add_argument("--admin-key", default=os.environ.get(ADMIN_KEY_ENV) or None,
                       help=f"restrict Triton's admin APIs and experiment changes to callers sending it in the "
                            f"'{ADMIN_HEADER}' header (default: ${ADMIN_KEY_ENV}; none: unrestricted)")
    serve.add_argument("--no-gateway", action="store_true", help="do not start the HTTP gateway")
    serve.add_argument("--gateway-host", default="127.0.0.1")
    serve.add_argument("--gateway-port", type=int, default=9000, help="the gateway's port (OpenAI API, /inference)")
    serve.add_argument("--database-url", default="",
                       help="postgresql://... shared by replicas (sets POINTSMAN_DATABASE_URL for the server; "
                            "default: that variable, else the SQLite file in the state folder)")
    serve.set_defaults(func=_serve)

    from pointsman.gateway.server import add_arguments as gateway_arguments
    from pointsman.gateway.server import run as run_gateway

    gateway = gateway_arguments(sub.add_parser("gateway", help="run the HTTP gateway alone, against a (remote) "
                                               "Triton's gRPC endpoint"))
    gateway.set_defaults(func=run_gateway)

    export = sub.add_parser("export", help="export a local Hugging Face checkpoint into the repository")
    export.add_argument("--checkpoint", type=Path, required=True)
    export.add_argument("--name", required=True)
    export.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    export.add_argument("--force", action="store_true")
    export.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="float16: half-precision graph for GPUs (CPU runs it slowly); default exact float32")
    export.add_argument("--quantize", choices=("int8",), default=None,
                        help="int8: onnxruntime dynamic quantisation for CPU, held to a perplexity check")
    routing = export.add_argument_group("routing metadata", "written into the engine's config.pbtxt as pointsman.* "
                                        "parameters; without them the model is served but not routed to")
    routing.add_argument("--task-scores", help="coding=0.9,creative=0.2,qa=0.5,reasoning=0.3 (each 0 to 1)")
    routing.add_argument("--capabilities", help="comma list of general, coding, creative, qa, reasoning")
    routing.add_argument("--quality-prior", type=float, help="0 to 1")
    routing.add_argument("--tokens-per-second-prior", type=float, help="optional speed prior (one sequence alone)")
    routing.add_argument("--time-to-first-token-prior", type=float, help="optional, seconds")
    export.add_argument("--kv-cache", choices=("inplace", "concat"), default="inplace",
                        help="inplace: GroupQueryAttention over a preallocated KV buffer (default); "
                             "concat: the older graph that copies the cache every step (a benchmark baseline)")
    export.set_defaults(func=_export, parser=export)

    demo = sub.add_parser("demo-models", help="build the small demo checkpoints and export them")
    demo.add_argument("--build-dir", type=Path, default=Path("build"))
    demo.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    demo.add_argument("--force", action="store_true")
    demo.set_defaults(func=_demo_models)

    classifier = sub.add_parser("build-classifier", help="train and export the prompt_classifier model (also run by "
                                "demo-models)")
    classifier.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    classifier.add_argument("--force", action="store_true")
    classifier.set_defaults(func=_build_classifier)

    try:
        from pointsman.client.cli import add_client_commands
    except ImportError:  # the client commands arrive with client/cli.py
        pass
    else:
        add_client_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"pointsman {args.command}: {exc}", file=sys.stderr)  # noqa: T201
        return 2


if __name__ == "__main__":
    sys.exit(main())
