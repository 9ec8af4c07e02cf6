"""The peer: a plain FastAPI + transformers `generate()` server, what a team writes without Triton.

    python -m pointsman.loadtests.peer_server --checkpoint build/checkpoints/gpt2 --port 18500
    curl -X POST 127.0.0.1:18500/generate -d '{"prompt": "def add(a, b):", "max_new_tokens": 16}'

One process, one model, one `model.generate()` call per request. The endpoint is a plain
`def`, so FastAPI runs it in its thread pool and concurrent requests overlap in torch
(the stronger of the two usual shapes: an `async def` calling generate() would serialise
every request on the event loop). No batching across requests: that is the point of
comparison with Pointsman's in-flight batching engine. bench_report.py starts it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

LOGGER = logging.getLogger(__name__)
MAX_NEW_TOKENS_CAP = 1024


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1)
    max_new_tokens: int = Field(20, ge=1, le=MAX_NEW_TOKENS_CAP)
    # min_new_tokens == max_new_tokens generates exactly that many (EOS suppressed until then)
    min_new_tokens: int = Field(0, ge=0, le=MAX_NEW_TOKENS_CAP)


class GenerateResponse(BaseModel):
    text: str
    tokens: int
    latency_ms: float


def create_app(checkpoint: Path, threads: int = 0):
    """Build the FastAPI app serving one Hugging Face causal-LM checkpoint (loaded here, not at import)."""
    import torch
    from fastapi import FastAPI, HTTPException
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint).eval()
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else model.config.eos_token_id
    context = int(getattr(model.config, "n_positions", None) or getattr(model.config, "n_ctx", 1024))

    app = FastAPI(title="peer: FastAPI + transformers generate()")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "checkpoint": str(checkpoint)}

    @app.post("/generate", response_model=GenerateResponse)
    def generate(req: GenerateRequest) -> GenerateResponse:
        start = time.perf_counter()
        encoded = tokenizer(req.prompt, return_tensors="pt")
        prompt_len = int(encoded["input_ids"].shape[1])
        if prompt_len + req.max_new_tokens > context:
            raise HTTPException(400, f"prompt ({prompt_len} tokens) + max_new_tokens exceeds the context ({context})")
        with torch.inference_mode():
            out = model.generate(**encoded, max_new_tokens=req.max_new_tokens,
                                 min_new_tokens=min(req.min_new_tokens, req.max_new_tokens) or None,
                                 do_sample=False, pad_token_id=eos)
        new = out[0, prompt_len:]
        return GenerateResponse(text=tokenizer.decode(new, skip_special_tokens=True), tokens=int(new.shape[0]),
                                latency_ms=(time.perf_counter() - start) * 1000.0)

    return app


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peer_server", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("build/checkpoints/gpt2"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18500)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not (args.checkpoint / "config.json").exists():
        print(f"peer_server: --checkpoint {args.checkpoint}: no config.json (run `pointsman demo-models`)",  # noqa: T201
              file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run(create_app(args.checkpoint, args.threads), host=args.host, port=args.port,
                log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
