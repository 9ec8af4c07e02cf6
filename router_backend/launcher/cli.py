"""The `pointsman` command.

    pointsman serve --http-port 8000
    pointsman export --checkpoint ./my-gpt2 --name gpt2
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path


def _serve(args: argparse.Namespace) -> int:
    from pointsman.launcher.tritonserver import ServerError, ServerPorts, TritonServer

    server = TritonServer(args.model_repository, host=args.host,
                          ports=ServerPorts(args.http_port, args.grpc_port, args.metrics_port))
    server.start()
    # forward SIGTERM (and SIGHUP: the server has its own session, the terminal's signals
    # reach only us) as SIGINT so tritonserver unloads models and exits cleanly
    for forwarded in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(forwarded, lambda *_: server.process and server.process.send_signal(signal.SIGINT))
    try:
        server.wait_ready(timeout=args.ready_timeout)
    except ServerError as exc:
        print(f"pointsman serve: {exc}", file=sys.stderr)  # noqa: T201
        server.stop()
        return 1
    except KeyboardInterrupt:
        return server.stop() or 130
    base = f"http://{server.http_url}"
    print(  # noqa: T201
        f"\nPointsman is ready: HTTP {base}, gRPC {server.grpc_url}, "
        f"metrics http://{args.host}:{args.metrics_port}/metrics\n"
        f"Try:\n  curl -X POST {base}/v2/models/gpt2/generate "
        f"-d '{{\"text_input\":\"def add(a, b):\",\"max_tokens\":16}}'\n"
        f"  curl -X POST {base}/v2/models/router/generate "
        f"-d '{{\"text_input\":\"Write a poem about rain\",\"auto_select\":true}}'\n",
        flush=True,
    )
    try:
        code = server.process.wait()
    except KeyboardInterrupt:
        code = server.stop()
    return code or 0


def _export(args: argparse.Namespace) -> int:
    from pointsman.export.pipeline import export_model

    export_model(args.checkpoint, args.name, args.model_repository, force=args.force, dtype=args.dtype,
                 quantize=args.quantize)
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
    serve.set_defaults(func=_serve)

    export = sub.add_parser("export", help="export a local Hugging Face checkpoint into the repository")
    export.add_argument("--checkpoint", type=Path, required=True)
    export.add_argument("--name", required=True)
    export.add_argument("--model-repository", type=Path, default=Path("model_repository"))
    export.add_argument("--force", action="store_true")
    export.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="float16: half-precision graph for GPUs (CPU runs it slowly); default exact float32")
    export.add_argument("--quantize", choices=("int8",), default=None,
                        help="int8: onnxruntime dynamic quantisation for CPU, held to a perplexity check")
    export.set_defaults(func=_export)

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
