"""Pseudo face-parsing masks for real CelebA images, from models that ship in the mediapipe wheel.

The paper trains its segmentation net on Helen with Smith et al.'s labels (§4.1); we have no
Helen, so for real CelebA images the 7 classes of §4.1 (background, hair, face skin, eyes,
eyebrows, mouth, nose) are derived once, offline, from

* mediapipe's face mesh (468 landmarks): face oval -> face skin, eye / eyebrow / outer-lip
  contours -> eyes / eyebrows / mouth, convex hull of the nose landmarks -> nose;
* mediapipe's selfie segmenter (person vs background): hair = person above the chin - face.

It also writes the 5 CelebA landmarks (eye centres, nose tip, mouth corners) for the BBox
baseline, since the shared CelebA copy has no landmark file.

Run it in its own venv (mediapipe pins protobuf<5, TensorFlow needs >=6.31)::

    python3.11 -m venv .venv-masks
    .venv-masks/bin/pip install mediapipe==0.10.14 pillow numpy tqdm
    .venv-masks/bin/python -m ssp_ssg.pseudo_masks --images ../shared/data/celeba \\
        --out results/.pseudo_masks/celeba

This module imports only numpy, PIL, tqdm and mediapipe. Outputs in ``--out``:
``<stem>.png`` (uint8 labels 0..6, the image's size), ``list_landmarks_align_celeba.txt``
(CelebA's format, in the image's pixels), ``no_face.txt``, ``unreadable.txt``,
``pseudo_masks.json`` (counts and parameters). Images already done are skipped (cache).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

#: 7-class scheme of Kalayeh et al. §4.1 (same order as common.attributes.PARTS7_LABELS).
PARTS7 = ("background", "hair", "face_skin", "eyes", "eyebrows", "mouth", "nose")
LABEL = {name: index for index, name in enumerate(PARTS7)}
LANDMARK_HEADER = ("lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
                   "leftmouth_x leftmouth_y rightmouth_x rightmouth_y")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
#: Face-mesh indices: nose tip, mouth corners, chin (canonical mesh).
NOSE_TIP, MOUTH_CORNERS, CHIN = 1, (61, 291), 152


def find_image_dir(path: Path) -> Path:
    """``path`` itself if it holds images, else its single ``img_align_celeba*`` folder (also
    under ``path/celeba``, e.g. ``../shared/data``)."""
    if not path.is_dir():
        raise FileNotFoundError(f"image folder not found: {path}")
    if any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir() if p.is_file()):
        return path
    candidates = sorted(p for p in [*path.glob("img_align_celeba*"),
                                    *path.glob("celeba/img_align_celeba*")] if p.is_dir())
    if len(candidates) != 1:
        raise FileNotFoundError(f"{path}: no images and not exactly one img_align_celeba* folder")
    return candidates[0]


def chain_edges(edges) -> list[list[int]]:
    """Split an undirected edge set into its paths / cycles, each as an ordered vertex list."""
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    unvisited = set(neighbours)
    chains = []
    while unvisited:
        ends = [v for v in unvisited if len(neighbours[v]) == 1]
        start = min(ends) if ends else min(unvisited)
        chain, previous, current = [start], None, start
        unvisited.discard(start)
        while True:
            following = [v for v in neighbours[current] if v != previous and v in unvisited]
            if not following:
                break
            previous, current = current, following[0]
            chain.append(current)
            unvisited.discard(current)
        chains.append(chain)
    return chains


def polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain; returns hull vertices in order."""
    pts = sorted(map(tuple, points))
    if len(pts) < 3:
        return np.array(pts)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def region_polygons(connections) -> dict[str, list[list[int]]]:
    """Mesh-index polygons of each facial part, from mediapipe's connection sets."""

    def loop(edges, largest=True):
        chains = chain_edges(edges)
        return [max(chains, key=len) if largest else chains]

    def band(edges):  # eyebrows: two open paths (upper and lower edge) of one band
        first, second = chain_edges(edges)[:2]
        return [(first, second)]

    return {
        "face_oval": loop(connections.FACEMESH_FACE_OVAL),
        "eyes": loop(connections.FACEMESH_LEFT_EYE) + loop(connections.FACEMESH_RIGHT_EYE),
        "eyebrows": band(connections.FACEMESH_LEFT_EYEBROW) + band(connections.FACEMESH_RIGHT_EYEBROW),
        "lips": chain_edges(connections.FACEMESH_LIPS),
        "nose": [sorted({i for edge in connections.FACEMESH_NOSE for i in edge})],
    }


def close_band(points: np.ndarray, edges: tuple[list[int], list[int]]) -> np.ndarray:
    """Close an eyebrow band from its two edges, whichever way they were chained."""
    first, second = points[edges[0]], points[edges[1]]
    if np.linalg.norm(first[-1] - second[0]) > np.linalg.norm(first[-1] - second[-1]):
        second = second[::-1]
    return np.concatenate([first, second])


def parts_mask(points: np.ndarray, person: np.ndarray, polygons: dict) -> np.ndarray:
    """7-class mask (H, W) from mesh points (N, 2) in pixels and a boolean person mask."""
    height, width = person.shape
    oval = points[polygons["face_oval"][0]]
    face = Image.new("L", (width, height), 0)
    ImageDraw.Draw(face).polygon([tuple(v) for v in oval.astype(np.float64)], fill=1)
    face = np.asarray(face, dtype=bool)

    # Person pixels below the chin are neck, shoulders and clothes (Smith et al. label them
    # background); long hair below the chin is lost, ears count as hair.
    below_chin = np.arange(height)[:, None] > points[CHIN, 1]
    hair = person & ~face & ~below_chin
    labels = np.where(hair, LABEL["hair"], LABEL["background"]).astype(np.uint8)
    canvas = Image.fromarray(labels)
    draw = ImageDraw.Draw(canvas)

    def fill(vertices: np.ndarray, label: str):
        if len(vertices) >= 3:
            draw.polygon([tuple(v) for v in vertices.astype(np.float64)], fill=LABEL[label])

    fill(oval, "face_skin")
    fill(convex_hull(points[polygons["nose"][0]]), "nose")
    for polygon in polygons["eyes"]:
        fill(points[polygon], "eyes")
    for edges in polygons["eyebrows"]:
        fill(close_band(points, edges), "eyebrows")
    lip_loops = sorted((points[c] for c in polygons["lips"]), key=polygon_area)
    fill(lip_loops[-1], "mouth")  # outer lip contour: lips and inner mouth
    return np.asarray(canvas)


def five_landmarks(points: np.ndarray, polygons: dict) -> np.ndarray:
    """CelebA's 5 landmarks (image-left eye first) from the mesh, (5, 2) x,y."""
    eyes = sorted((points[p].mean(axis=0) for p in polygons["eyes"]), key=lambda c: c[0])
    mouth = sorted((points[i] for i in MOUTH_CORNERS), key=lambda c: c[0])
    return np.stack([eyes[0], eyes[1], points[NOSE_TIP], mouth[0], mouth[1]])


class PseudoParser:
    """Runs mediapipe's face mesh and selfie segmenter on one image at a time."""

    def __init__(self, min_width: int = 178, person_threshold: float = 0.5):
        from mediapipe.python.solutions import face_mesh, face_mesh_connections
        from mediapipe.python.solutions import selfie_segmentation

        self.face_mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                            refine_landmarks=False, min_detection_confidence=0.5)
        self.segmenter = selfie_segmentation.SelfieSegmentation(model_selection=0)
        self.polygons = region_polygons(face_mesh_connections)
        self.min_width = min_width
        self.person_threshold = person_threshold

    def __call__(self, image: Image.Image):
        """Return (mask (H, W) uint8, landmarks (5, 2)) or None when no face is found."""
        width, height = image.size
        factor = max(1.0, self.min_width / width)
        work = image if factor == 1.0 else image.resize(
            (round(width * factor), round(height * factor)), Image.BICUBIC)
        pixels = np.ascontiguousarray(np.asarray(work.convert("RGB")))
        result = self.face_mesh.process(pixels)
        if not result.multi_face_landmarks:
            return None
        mesh = result.multi_face_landmarks[0].landmark
        points = np.array([[p.x * width, p.y * height] for p in mesh], dtype=np.float64)
        person_prob = self.segmenter.process(pixels).segmentation_mask
        person = np.asarray(Image.fromarray(person_prob.astype(np.float32)).resize(
            (width, height), Image.BILINEAR)) > self.person_threshold
        return parts_mask(points, person, self.polygons), five_landmarks(points, self.polygons)

    def close(self):
        self.face_mesh.close()
        self.segmenter.close()


def _read_landmark_cache(path: Path) -> dict[str, list[float]]:
    cache = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 11:
                cache[parts[0]] = [float(v) for v in parts[1:]]
    return cache


def write_celeba_landmarks(path: Path, landmarks: dict[str, list[float]]) -> None:
    """CelebA's ``list_landmarks_align_celeba.txt`` layout: count, header, one row per image."""
    lines = [str(len(landmarks)), LANDMARK_HEADER]
    for name in sorted(landmarks):
        lines.append(name + " " + " ".join(str(int(round(v))) for v in landmarks[name]))
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\r\n".join(lines) + "\r\n")
    tmp.replace(path)


def compute_pseudo_masks(images: Path, out: Path, limit: int | None = None,
                         min_width: int = 178, progress: bool = True) -> dict:
    """Write a mask and landmarks for every image of ``images`` into ``out``; return a summary."""
    image_dir = find_image_dir(Path(images))
    paths = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if limit is not None:
        paths = paths[:limit]
    out.mkdir(parents=True, exist_ok=True)
    landmark_cache_path = out / "landmarks_cache.txt"
    landmarks = _read_landmark_cache(landmark_cache_path)
    no_face, unreadable = [], []
    parser = PseudoParser(min_width=min_width)
    try:
        with landmark_cache_path.open("a") as cache:
            for path in tqdm(paths, desc="pseudo masks", unit="img", disable=not progress):
                mask_path = out / f"{path.stem}.png"
                if mask_path.is_file() and path.name in landmarks:
                    continue
                try:
                    with Image.open(path) as handle:
                        image = handle.convert("RGB")
                except (OSError, ValueError) as error:
                    unreadable.append(f"{path.name}\t{error}")
                    continue
                parsed = parser(image)
                if parsed is None:
                    no_face.append(path.name)
                    continue
                mask, five = parsed
                tmp = mask_path.with_suffix(".tmp.png")
                Image.fromarray(mask).save(tmp)
                tmp.replace(mask_path)
                landmarks[path.name] = five.reshape(-1).tolist()
                cache.write(path.name + " " + " ".join(f"{v:.2f}" for v in landmarks[path.name])
                            + "\n")
                cache.flush()
    finally:
        parser.close()
    write_celeba_landmarks(out / "list_landmarks_align_celeba.txt",
                           {k: v for k, v in landmarks.items() if (out / f"{Path(k).stem}.png").is_file()})
    (out / "no_face.txt").write_text("".join(f"{name}\n" for name in no_face))
    (out / "unreadable.txt").write_text("".join(f"{line}\n" for line in unreadable))
    import mediapipe

    summary = {
        "images": str(image_dir), "requested": len(paths),
        "masks": sum(1 for p in paths if (out / f"{p.stem}.png").is_file()),
        "no_face": len(no_face), "unreadable": len(unreadable),
        "labels": list(PARTS7), "min_width": min_width,
        "mediapipe": mediapipe.__version__,
        "models": ["face_mesh (468 landmarks)", "selfie_segmentation (model_selection=0)"],
    }
    (out / "pseudo_masks.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssp_ssg.pseudo_masks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, required=True,
                        help="image folder, or a CelebA root with one img_align_celeba* folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (cache)")
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--min-width", type=int, default=178,
                        help="upscale narrower images to this width before detection")
    args = parser.parse_args(argv)
    summary = compute_pseudo_masks(args.images, args.out, args.limit, args.min_width)
    print(json.dumps(summary, indent=2))
    if summary["no_face"] or summary["unreadable"]:
        print(f"{summary['no_face']} images without a face are listed in {args.out / 'no_face.txt'};"
              f" {summary['unreadable']} unreadable in {args.out / 'unreadable.txt'}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
