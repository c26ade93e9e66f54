"""Deterministic procedural faces whose CelebA attributes are visible in the pixels.

The embedded default dataset of the project: ``render_face`` / ``generate_faces`` give images,
attributes, landmarks, identities and pixel-exact parsing masks; ``write_celeba_layout``,
``write_helen_layout`` and ``write_mtfl_layout`` write them in the official layouts of
CelebA, Helen (Smith et al.) and MTFL. See ``common/README.md`` ("Synthetic faces")."""
from common.synthetic.render import (
    GENERATOR_VERSION, IMAGES_PER_IDENTITY, SyntheticFace, generate_faces, identity_of,
    render_face, sample_attributes)
from common.synthetic.layouts import (
    identity_partition, write_celeba_layout, write_helen_layout, write_mtfl_layout)

__all__ = ["GENERATOR_VERSION", "IMAGES_PER_IDENTITY", "SyntheticFace", "generate_faces",
           "identity_of", "identity_partition", "render_face", "sample_attributes",
           "write_celeba_layout", "write_helen_layout", "write_mtfl_layout"]
