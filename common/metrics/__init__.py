"""Evaluation metrics shared by the paper packages.

The classification and segmentation metrics are re-exported here (NumPy only, cheap to import).
FID (``common.metrics.fid``) and the deep face-feature norm (``common.metrics.dfn``) need torch /
OpenCV and are imported from their submodules. CLI: ``python -m common.metrics fid DIR_A DIR_B``.
"""
from common.metrics.classification import *  # noqa: F401,F403  -- exactly its __all__
from common.metrics.classification import __all__  # noqa: F401
