"""Reference Visualized BGE (FlagEmbedding 1.2.11) on CPU; run with the setup.sh venv's python."""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np
import torch

# The PyPI torchvision wheel is a CUDA build whose C++ ops don't load with the CPU torch; define the
# two ops its Python side registers fake kernels for, so that `import torchvision` (and timm) works.
_TV_LIB = torch.library.Library("torchvision", "DEF")


def _no_nms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    raise NotImplementedError("torchvision C++ ops are unavailable in the reference venv")


for _op in ("nms", "qnms"):
    _TV_LIB.define(f"{_op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TV_LIB.impl(_op, _no_nms, "CPU")

import torchvision  # noqa: E402,F401  (after the op definitions)
from FlagEmbedding.visual import eva_clip  # noqa: E402
from FlagEmbedding.visual.modeling import Visualized_BGE  # noqa: E402

_VISION = {"image_size": 224, "layers": 12, "width": 768, "drop_path_rate": 0, "head_width": 64,
           "mlp_ratio": 2.6667, "patch_size": 16, "eva_model_name": "eva-clip-b-16-X",
           "xattn": True, "fusedLN": True, "rope": True, "pt_hw_seq_len": 16, "intp_freq": True,
           "naiveswiglu": True, "subln": True, "patch_dropout": 0.5}
_TEXT = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12,
         "xattn": True, "fusedLN": True}
EVA_CONFIGS: dict[str, dict[str, Any]] = {
    "EVA02-CLIP-B-16": {"embed_dim": 512, "vision_cfg": dict(_VISION), "text_cfg": dict(_TEXT)},
    "EVA02-CLIP-L-14": {"embed_dim": 768,
                        "vision_cfg": {**_VISION, "layers": 24, "width": 1024, "patch_size": 14,
                                       "eva_model_name": "eva-clip-l-14"},
                        "text_cfg": {**_TEXT, "width": 768, "heads": 12}},
}
# (checkpoint file, BERT folder name fragment, EVA config name) per variant
VARIANTS = (("Visualized_base_en_v1.5.pth", "bge-base-en-v1.5", "EVA02-CLIP-B-16"),
            ("Visualized_m3.pth", "bge-m3", "EVA02-CLIP-L-14"))
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}

_orig_mask = Visualized_BGE.get_extended_attention_mask


@functools.wraps(_orig_mask)
def _fp32_mask(self: Visualized_BGE, attention_mask: torch.Tensor, input_shape: Any,
               device: Any = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return _orig_mask(self, attention_mask, input_shape, device, dtype)


# the fp16 default breaks BERT sdpa attention in transformers 4.57
Visualized_BGE.get_extended_attention_mask = _fp32_mask


def find_variant(model_dir: Path) -> tuple[Path, Path, str]:
    """Return (checkpoint, BERT folder, EVA config name) for the model folder."""
    for ckpt, frag, eva in VARIANTS:
        bert = [p for p in sorted(model_dir.iterdir()) if p.is_dir() and frag in p.name]
        if (model_dir / ckpt).is_file() and bert:
            return model_dir / ckpt, bert[0], eva
    raise FileNotFoundError(f"{model_dir}: no Visualized_base_en_v1.5.pth + bge-base-en-v1.5/ "
                            "or Visualized_m3.pth + bge-m3/")


def register_eva_configs(override_name: str | None = None,
                         override: dict[str, Any] | None = None) -> None:
    """Write the EVA configs the sdist lacks (optionally one replaced) and register them."""
    cfgs = {name: json.loads(json.dumps(cfg)) for name, cfg in EVA_CONFIGS.items()}
    if override_name and override is not None:
        cfgs[override_name] = override
    with tempfile.TemporaryDirectory(prefix="pardus-eva-") as tmp:
        for name, cfg in cfgs.items():
            (Path(tmp) / f"{name}.json").write_text(json.dumps(cfg))
        eva_clip.add_model_config(tmp)  # rescans now; later paths win over earlier ones


def load_reference(model_dir: str, vision_json: str | None = None) -> Visualized_BGE:
    """Build the reference Visualized_BGE from a model folder, on CPU, fp32, in eval mode."""
    root = Path(model_dir)
    ckpt, bert_dir, eva_name = find_variant(root)
    vj = Path(vision_json) if vision_json else root / "eva_vision.json"
    register_eva_configs(eva_name, json.loads(vj.read_text()) if vj.is_file() else None)
    model = Visualized_BGE(model_name_bge=str(bert_dir), model_weight=str(ckpt))
    model.device = torch.device("cpu")
    return model.to("cpu", torch.float32).eval()


def encode_reference(model: Visualized_BGE, kind: str, items: Sequence[Any]) -> np.ndarray:
    """Encode one item per call with the reference's own encode(); mm items are (path, text)."""
    rows = []
    with torch.no_grad():
        for item in items:
            if kind == "image":
                out = model.encode(image=str(item))
            elif kind == "text":
                out = model.encode(text=str(item))
            elif kind == "mm":
                path, text = item
                out = model.encode(image=str(path), text=str(text))
            else:
                raise ValueError(f"unknown kind {kind!r}")
            rows.append(out.float().cpu().numpy().reshape(-1))
    if not rows:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack(rows).astype(np.float32)


def _items(kind: str, inputs: list[str], texts: list[str] | None) -> list[Any]:
    if kind != "mm":
        return list(inputs)
    if texts is None or len(texts) != len(inputs):
        raise SystemExit("--kind mm needs --texts with as many entries as --inputs")
    return list(zip(inputs, texts))


def _image_files(args: list[str]) -> list[str]:
    files: list[str] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            files += [str(f) for f in sorted(p.iterdir()) if f.suffix.lower() in IMAGE_EXTS]
        else:
            files.append(str(p))
    return files


def cmd_encode(a: argparse.Namespace) -> None:
    model = load_reference(a.model_dir, a.vision_json)
    emb = encode_reference(model, a.kind, _items(a.kind, a.inputs, a.texts))
    np.save(a.out, emb)
    print(json.dumps({"kind": a.kind, "shape": list(emb.shape), "out": a.out}))


def cmd_bench(a: argparse.Namespace) -> None:
    torch.set_num_threads(a.threads or os.cpu_count() or 1)
    model = load_reference(a.model_dir, a.vision_json)
    images = _image_files(a.images or [])
    n = max(len(images), 8)
    texts = [f"a photo of item number {i} on a plain background" for i in range(n)]
    if a.kind == "text":
        pool: list[Any] = texts
    else:
        if not images:
            raise SystemExit("--images is needed for image and mm")
        pool = images if a.kind == "image" else list(zip(images, texts))
    encode_reference(model, a.kind, pool[:1])  # warm-up
    count, t0 = 0, time.perf_counter()
    while True:
        encode_reference(model, a.kind, [pool[count % len(pool)]])
        count += 1
        elapsed = time.perf_counter() - t0
        if elapsed >= a.seconds:
            break
    print(json.dumps({"kind": a.kind, "items": count, "seconds": round(elapsed, 3),
                      "items_per_s": round(count / elapsed, 3),
                      "threads": torch.get_num_threads()}))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("encode", "bench"):
        p = sub.add_parser(name)
        p.add_argument("--model-dir", required=True)
        p.add_argument("--vision-json", default=None)
        p.add_argument("--kind", choices=("image", "text", "mm"), required=True)
        if name == "encode":
            p.add_argument("--inputs", nargs="+", required=True,
                           help="image paths, or texts for --kind text")
            p.add_argument("--texts", nargs="+", default=None,
                           help="texts paired with --inputs for mm")
            p.add_argument("--out", required=True)
        else:
            p.add_argument("--images", nargs="*", default=None, help="image files or folders")
            p.add_argument("--seconds", type=float, default=10.0)
            p.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    a = ap.parse_args(argv)
    (cmd_encode if a.cmd == "encode" else cmd_bench)(a)


if __name__ == "__main__":
    sys.exit(main())
