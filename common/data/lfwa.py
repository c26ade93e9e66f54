"""LFW attribute labels, mapped onto CelebA's 40 attributes.

Two formats are read:

- Kumar et al.'s ``lfw_attributes.txt`` (ICCV 2009 "Attribute and Simile Classifiers"):
  ``#`` comment lines, a header ``#<TAB>person<TAB>imagenum<TAB>Male<TAB>Asian ...`` (73
  attributes), then tab-separated rows ``person, imagenum, 73 classifier scores``. A score > 0
  means the attribute is present.
- LFWA as distributed by Liu et al. (ICCV 2015) in CelebA's ``list_attr`` format (count line,
  attribute names, ``<image> ±1 ...``); names are matched to CelebA's.

``KUMAR_TO_CELEBA`` names the Kumar attribute behind each CelebA attribute. All 40 have one:
Liu et al. built LFWA's 40 labels from these attributes. Two are not one-to-one and are
documented where they are defined (Attractive, Young). A CelebA attribute with no source column
in a file gets NaN in the returned array and ``False`` in the ``known`` mask.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.attributes import ATTRIBUTE_INDEX, CELEBA_ATTRIBUTES
from common.data.celeba import read_attribute_file

#: CelebA attribute -> Kumar et al. attribute (``lfw_attributes.txt`` header name).
KUMAR_TO_CELEBA: dict[str, str] = {
    "5_o_Clock_Shadow": "5 o' Clock Shadow", "Arched_Eyebrows": "Arched Eyebrows",
    # Kumar scores attractiveness per gender; Attractive takes "Attractive Man" for faces whose
    # "Male" score is > 0 and "Attractive Woman" otherwise (see ATTRACTIVE_WOMAN).
    "Attractive": "Attractive Man",
    "Bags_Under_Eyes": "Bags Under Eyes", "Bald": "Bald", "Bangs": "Bangs", "Big_Lips": "Big Lips",
    "Big_Nose": "Big Nose", "Black_Hair": "Black Hair", "Blond_Hair": "Blond Hair", "Blurry": "Blurry",
    "Brown_Hair": "Brown Hair", "Bushy_Eyebrows": "Bushy Eyebrows", "Chubby": "Chubby",
    "Double_Chin": "Double Chin", "Eyeglasses": "Eyeglasses", "Goatee": "Goatee", "Gray_Hair": "Gray Hair",
    "Heavy_Makeup": "Heavy Makeup", "High_Cheekbones": "High Cheekbones", "Male": "Male",
    "Mouth_Slightly_Open": "Mouth Slightly Open", "Mustache": "Mustache", "Narrow_Eyes": "Narrow Eyes",
    "No_Beard": "No Beard", "Oval_Face": "Oval Face", "Pale_Skin": "Pale Skin", "Pointy_Nose": "Pointy Nose",
    "Receding_Hairline": "Receding Hairline", "Rosy_Cheeks": "Rosy Cheeks", "Sideburns": "Sideburns",
    "Smiling": "Smiling", "Straight_Hair": "Straight Hair", "Wavy_Hair": "Wavy Hair",
    "Wearing_Earrings": "Wearing Earrings", "Wearing_Hat": "Wearing Hat",
    "Wearing_Lipstick": "Wearing Lipstick", "Wearing_Necklace": "Wearing Necklace",
    "Wearing_Necktie": "Wearing Necktie",
    # Kumar's age groups are Baby / Child / Youth / Middle Aged / Senior; Young takes "Youth".
    "Young": "Youth",
}
ATTRACTIVE_WOMAN = "Attractive Woman"


@dataclass(frozen=True, eq=False)
class LFWAttributes:
    """Kumar et al.'s scores: ``image_ids`` are LFW paths ``<Person_Name>/<Person_Name>_0001.jpg``."""

    image_ids: list[str]
    names: tuple[str, ...]
    scores: np.ndarray  # (N, K) float32 classifier outputs; > 0 = present

    def __len__(self) -> int:
        return len(self.image_ids)


def read_lfw_attributes(path: str | os.PathLike) -> LFWAttributes:
    """Parse Kumar et al.'s ``lfw_attributes.txt``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LFW attribute file not found: {path}")
    names: tuple[str, ...] | None = None
    image_ids, rows = [], []
    with open(path, "r", encoding="utf-8", newline="") as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = [field.strip() for field in line.split("\t")]
            if line.startswith("#"):
                if fields[1:3] == ["person", "imagenum"]:
                    names = tuple(fields[3:])
                continue
            if names is None:
                raise ValueError(f"{path}:{line_number}: data before the '#\\tperson\\timagenum\\t...' header")
            if len(fields) != len(names) + 2:
                raise ValueError(f"{path}:{line_number}: expected person, imagenum and {len(names)} scores, "
                                 f"got {len(fields)} tab-separated fields")
            person, number = fields[0], fields[1]
            if not number.isdigit():
                raise ValueError(f"{path}:{line_number}: imagenum is {number!r}, not an integer")
            try:
                rows.append([float(value) for value in fields[2:]])
            except ValueError:
                raise ValueError(f"{path}:{line_number}: scores must be numbers") from None
            folder = person.replace(" ", "_")
            image_ids.append(f"{folder}/{folder}_{int(number):04d}.jpg")
    if names is None:
        raise ValueError(f"{path}: no '#\\tperson\\timagenum\\t...' header line")
    return LFWAttributes(image_ids=image_ids, names=names,
                         scores=np.asarray(rows, dtype=np.float32).reshape(len(rows), len(names)))


def lfw_to_celeba(lfw: LFWAttributes) -> tuple[np.ndarray, np.ndarray]:
    """Binarise Kumar scores at 0 and arrange them as CelebA's 40 attributes.

    Returns ``(attributes float32 (N, 40) in {0, 1} or NaN, known bool (40,))``.
    """
    column = {name: i for i, name in enumerate(lfw.names)}
    present = (lfw.scores > 0).astype(np.float32)
    attributes = np.full((len(lfw), len(CELEBA_ATTRIBUTES)), np.nan, dtype=np.float32)
    for celeba_name, kumar_name in KUMAR_TO_CELEBA.items():
        if kumar_name in column and celeba_name != "Attractive":
            attributes[:, ATTRIBUTE_INDEX[celeba_name]] = present[:, column[kumar_name]]
    if {"Attractive Man", ATTRACTIVE_WOMAN, "Male"} <= column.keys():
        is_male = lfw.scores[:, column["Male"]] > 0
        attributes[:, ATTRIBUTE_INDEX["Attractive"]] = np.where(
            is_male, present[:, column["Attractive Man"]], present[:, column[ATTRACTIVE_WOMAN]])
    return attributes, ~np.isnan(attributes).all(axis=0)


def read_lfwa(path: str | os.PathLike) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Either format -> ``(image_ids, attributes float32 (N, 40) with NaN = unknown, known (40,))``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LFW attribute file not found: {path}")
    with open(path, "r", encoding="utf-8", newline="") as handle:
        first = handle.readline()
    if first.startswith("#"):
        lfw = read_lfw_attributes(path)
        attributes, known = lfw_to_celeba(lfw)
        return lfw.image_ids, attributes, known
    image_ids, values, names = read_attribute_file(path)
    unknown_names = [name for name in names if name not in ATTRIBUTE_INDEX]
    if unknown_names:
        raise ValueError(f"{path}:2: attribute names not in CelebA's 40: {unknown_names}")
    attributes = np.full((len(image_ids), len(CELEBA_ATTRIBUTES)), np.nan, dtype=np.float32)
    for i, name in enumerate(names):
        attributes[:, ATTRIBUTE_INDEX[name]] = values[:, i]
    return image_ids, attributes, ~np.isnan(attributes).all(axis=0)
