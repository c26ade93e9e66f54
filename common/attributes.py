"""Label vocabularies shared by every package: CelebA's 40 attributes, its 5 landmarks,
Smith et al.'s 11 Helen parsing labels and the 7-class scheme of Kalayeh et al. (CVPR'17, §3.1)."""
from __future__ import annotations

import numpy as np

#: CelebA's 40 binary attributes in the column order of ``list_attr_celeba.txt``.
CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair",
    "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair",
    "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings",
    "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
NUM_ATTRIBUTES = len(CELEBA_ATTRIBUTES)
ATTRIBUTE_INDEX: dict[str, int] = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}

#: The 5 landmarks of ``list_landmarks_align_celeba.txt`` (and MTFL), in file order.
CELEBA_LANDMARKS: tuple[str, ...] = ("lefteye", "righteye", "nose", "leftmouth", "rightmouth")
#: Index permutation that maps landmarks of an image to those of its horizontal mirror.
LANDMARK_FLIP_PERMUTATION: tuple[int, ...] = (1, 0, 2, 4, 3)

#: Smith et al. (CVPR'13) Helen labels: files ``<id>_lbl00.png`` .. ``<id>_lbl10.png``.
HELEN11_LABELS: tuple[str, ...] = (
    "background", "face_skin", "left_eyebrow", "right_eyebrow", "left_eye", "right_eye",
    "nose", "upper_lip", "inner_mouth", "lower_lip", "hair",
)
#: Label permutation for a horizontally flipped Helen mask (left/right brows and eyes swap).
HELEN11_FLIP_PERMUTATION: tuple[int, ...] = (0, 1, 3, 2, 5, 4, 6, 7, 8, 9, 10)

#: The 7 semantic regions of Kalayeh et al. §3.1 / §4.1.
PARTS7_LABELS: tuple[str, ...] = (
    "background", "hair", "face_skin", "eyes", "eyebrows", "mouth", "nose",
)
#: ``HELEN11_TO_PARTS7[helen_label] -> parts7_label`` (lips and inner mouth form "mouth").
HELEN11_TO_PARTS7: np.ndarray = np.array([0, 2, 4, 4, 3, 3, 6, 5, 5, 5, 1], dtype=np.uint8)


def helen11_to_parts7(mask: np.ndarray) -> np.ndarray:
    """Map a Smith et al. 11-label mask to the 7-class scheme of Kalayeh et al. §4.1."""
    return HELEN11_TO_PARTS7[np.asarray(mask, dtype=np.intp)]
