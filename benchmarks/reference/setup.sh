#!/usr/bin/env bash
# Build the side virtualenv that runs the REFERENCE Visualized BGE (FlagEmbedding 1.2.11) on CPU.
# Idempotent: re-running only re-checks the pins. Venv: ${PARDUS_REF_VENV:-<repo>/.venv-ref}.
# See shared/PLATFORM.md "Visualized BGE". Use the venv's python with benchmarks/reference/shim.py.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${PARDUS_REF_VENV:-$REPO/.venv-ref}"
PY="${PARDUS_REF_PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
start=$(date +%s)

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check)
pipq() {  # pip, minus the noise about missing local index folders
  local log rc=0; log="$(mktemp)"
  "${PIP[@]}" "$@" >"$log" 2>&1 || rc=$?
  grep -v 'is ignored: it is neither a file nor a directory' "$log" >&2 || true
  rm -f "$log"; return "$rc"
}

# Pins that keep torch the local CPU build (PIP_FIND_LINKS -> /opt/wheels) and nothing CUDA in.
CONS="$VENV/pardus-constraints.txt"
cat > "$CONS" <<'CONS_EOF'
torch==2.13.0+cpu
torchvision==0.28.0
transformers>=4.57,<4.58
CONS_EOF
export PIP_CONSTRAINT="$CONS"

pipq install -q -c "$CONS" "torch==2.13.0+cpu"
# The PyPI torchvision wheel is a CUDA build: --no-deps keeps its nvidia/torch deps out; the shim
# defines the two C++ ops it misses so that it imports against the CPU torch.
pipq install -q --no-deps "torchvision==0.28.0"
pipq install -q -c "$CONS" --no-binary FlagEmbedding "FlagEmbedding==1.2.11" \
  "transformers>=4.57,<5" peft timm einops ftfy regex sentencepiece pillow numpy

if "${PIP[@]}" list 2>/dev/null | grep -qi nvidia; then
  echo "error: nvidia packages ended up in $VENV:" >&2
  "${PIP[@]}" list | grep -i nvidia >&2
  exit 1
fi
"$VPY" - <<'PYEOF'
import importlib.metadata as md, sys
tv = md.version("torch")
if not tv.endswith("+cpu"):
    sys.exit(f"error: torch {tv} is not the CPU build")
PYEOF

# The sdist lacks the CLIP BPE vocab: take it from the open_clip_torch wheel.
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
EVA="$SITE/FlagEmbedding/visual/eva_clip"
if [ ! -s "$EVA/bpe_simple_vocab_16e6.txt.gz" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  pipq download -q --no-deps --only-binary :all: -d "$tmp" open_clip_torch
  "$VPY" - "$tmp" "$EVA" <<'PYEOF'
import glob, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
whl = glob.glob(f"{tmp}/open_clip_torch-*.whl")[0]
with zipfile.ZipFile(whl) as z, z.open("open_clip/bpe_simple_vocab_16e6.txt.gz") as src, \
        open(f"{dest}/bpe_simple_vocab_16e6.txt.gz", "wb") as out:
    shutil.copyfileobj(src, out)
PYEOF
fi

echo "reference venv ready at $VENV ($(( $(date +%s) - start )) s)"
