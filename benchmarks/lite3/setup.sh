#!/usr/bin/env bash
# Milvus Lite 3.2.2 (pure Python over FAISS), the embedded engine Pardus used before the Milvus
# 2.5 core, in a folder of its own: both ship the `milvus_lite` package, so they cannot share
# an environment. benchmarks/search_latency.py runs its server from here, side by side with
# the 2.5 core. Idempotent. Folder: ${PARDUS_LITE3_DIR:-<repo>/.lite3}.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TARGET="${PARDUS_LITE3_DIR:-$REPO/.lite3}"
PY="$REPO/.venv/bin/python"
if [ -f "$TARGET/milvus_lite/cmdline.py" ] && grep -q "3.2.2" "$TARGET"/milvus_lite-*.dist-info/METADATA; then
  echo "Milvus Lite 3.2.2 is in $TARGET"
  exit 0
fi
# grpcio, numpy and pyarrow come from Pardus's environment; faiss-cpu and milvus-lite from here.
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps --target "$TARGET" \
  "milvus-lite==3.2.2" "faiss-cpu>=1.7.4" 2>&1 | grep -v "is ignored: it is neither" || true
"$PY" -c "import sys; sys.path.insert(0, '$TARGET'); import milvus_lite, faiss; print('Milvus Lite', milvus_lite.__version__ if hasattr(milvus_lite, '__version__') else '3.2.2', 'and faiss', faiss.__version__, 'in $TARGET')"
