"""Pardus: multimodal product search (Visualized BGE, Milvus, a vision-language reranker on
vLLM, served by Ray Serve).

The one import package of the distribution. Its subpackages are the repository's top-level
folders, mapped in pyproject.toml: pardus.cli is cli/, pardus.serve is serve/, and so on, so an
install claims the name `pardus` alone.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pardus")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
