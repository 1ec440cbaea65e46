"""Child of test_hostile_images.py: decode one picture under a memory cap, print the outcome."""

import json
import resource
import sys

path, cap = sys.argv[1], int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

from pardus.deployments.embedder.images import ImageError, ImageLimits, preprocess  # noqa: E402
from pardus.deployments.settings import EmbedderSettings  # noqa: E402

try:
    crop = preprocess(open(path, "rb").read(), 224, ImageLimits.of(EmbedderSettings()))
    print(json.dumps({"code": "ok", "shape": list(crop.shape)}))
except ImageError as exc:
    print(json.dumps({"code": exc.reason, "message": exc.message}))
