"""Label conventions: every label value, name, tissue and role is defined here and only here."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ioplan.errors import InputError

__all__ = ["LABEL_INFO", "Label", "LabelInfo", "label_from_name"]


class Label(IntEnum):
    """Label values of ioplan label maps (phantom and real cases)."""

    BACKGROUND = 0
    SKIN = 1
    FAT = 2
    MUSCLE = 3
    RIB = 4
    VERTEBRA = 5
    SPINAL_CANAL = 6
    LIVER = 7
    TUMOR = 8
    PORTAL_VEIN = 9
    HEPATIC_VEIN = 10
    HEPATIC_ARTERY = 11
    BILE_DUCT = 12
    IVC = 13
    AORTA = 14
    GALLBLADDER = 15
    BOWEL_WALL = 16
    BOWEL_CONTENT = 17
    STOMACH = 18
    KIDNEY = 19
    SPLEEN = 20
    LUNG = 21
    DIAPHRAGM = 22
    HEART = 23
    # beyond the liver (issue 21): what the planner must respect in lung, kidney and bone
    COLLECTING_SYSTEM = 24
    URETER = 25
    RENAL_ARTERY = 26
    RENAL_VEIN = 27
    ADRENAL = 28
    BRONCHUS = 29
    PULMONARY_VESSEL = 30
    FISSURE = 31
    SPINAL_CORD = 32
    NERVE_ROOT = 33
    KIDNEY_MEDULLA = 34
    PANCREAS = 35
    # issue 22: a drainable fluid collection (abscess, biloma, ascites, pleural effusion)
    FLUID_COLLECTION = 36
    # soft tissue (issue 21): a peripheral nerve (sciatic) and a long bone (femur)
    PERIPHERAL_NERVE = 37
    LONG_BONE = 38
    FEMORAL_ARTERY = 39
    FEMORAL_VEIN = 40


#: Labels of blood vessels whose flow carries heat away (the engine's heat sinks).
VESSEL_LABELS = (
    Label.PORTAL_VEIN,
    Label.HEPATIC_VEIN,
    Label.IVC,
    Label.AORTA,
    Label.HEPATIC_ARTERY,
    Label.RENAL_ARTERY,
    Label.RENAL_VEIN,
    Label.PULMONARY_VESSEL,
    Label.FEMORAL_ARTERY,
    Label.FEMORAL_VEIN,
)


@dataclass(frozen=True)
class LabelInfo:
    """What a label means.

    Attributes
    ----------
    tissue : str
        Key in the tissue table (:mod:`ioplan.tissue`) used for physics.
    ct_hu : float
        Mean attenuation of the synthetic CT (portal venous phase), HU.
    critical : bool
        A structure a needle path must not cross (planning).
    colour : str
        Display colour (hex).
    description : str
        Plain-language meaning, with the tissue approximation when there is one.
    """

    tissue: str
    ct_hu: float
    critical: bool
    colour: str
    description: str


# CT attenuation of the phantom (portal venous phase, 120 kVp): typical values
# read from textbooks and radiology references, e.g. Radiopaedia "Hounsfield
# unit" (air -1000, lung -700 to -900, fat -100 to -50, water 0, soft tissue
# 20-60, enhancing liver 100-120 in portal phase, enhanced vessels 150-200,
# cancellous bone 200-400, cortical bone 700-1000) and Brant & Helms,
# Fundamentals of Diagnostic Radiology, 4th ed. They make the synthetic image
# look plausible; no measurement depends on them.
LABEL_INFO: dict[Label, LabelInfo] = {
    Label.BACKGROUND: LabelInfo("air", -1000.0, False, "#000000", "air outside the body"),
    Label.SKIN: LabelInfo("muscle", 40.0, False, "#e0b090", "skin (dermis; muscle properties)"),
    Label.FAT: LabelInfo("fat", -100.0, False, "#f0e68c", "subcutaneous and visceral fat"),
    Label.MUSCLE: LabelInfo("muscle", 55.0, False, "#b22222", "skeletal muscle"),
    Label.RIB: LabelInfo("bone", 650.0, True, "#f5f5f5", "ribs and costal cartilage"),
    Label.VERTEBRA: LabelInfo("bone_cancellous", 400.0, True, "#dcdcdc", "vertebrae (cancellous)"),
    Label.SPINAL_CANAL: LabelInfo(
        "muscle", 20.0, True, "#4682b4", "spinal canal (cord and CSF; muscle properties)"
    ),
    Label.LIVER: LabelInfo("liver", 105.0, False, "#a0522d", "liver parenchyma"),
    Label.TUMOR: LabelInfo(
        "tumor", 55.0, False, "#00ff7f", "tumour (hypodense; the host organ's tumour tissue)"
    ),
    Label.PORTAL_VEIN: LabelInfo("blood", 170.0, True, "#1e90ff", "portal vein tree"),
    Label.HEPATIC_VEIN: LabelInfo("blood", 150.0, True, "#00bfff", "hepatic vein tree"),
    Label.HEPATIC_ARTERY: LabelInfo("blood", 190.0, True, "#ff0000", "hepatic artery branches"),
    Label.BILE_DUCT: LabelInfo("gallbladder_bile", 15.0, True, "#adff2f", "central bile ducts"),
    Label.IVC: LabelInfo("blood", 140.0, True, "#4169e1", "inferior vena cava"),
    Label.AORTA: LabelInfo("blood", 180.0, True, "#dc143c", "abdominal aorta"),
    Label.FEMORAL_ARTERY: LabelInfo("blood", 180.0, True, "#e0301e", "femoral artery"),
    Label.FEMORAL_VEIN: LabelInfo("blood", 140.0, True, "#3a5fcd", "femoral vein"),
    Label.GALLBLADDER: LabelInfo("gallbladder_bile", 10.0, True, "#9acd32", "gallbladder"),
    Label.BOWEL_WALL: LabelInfo("bowel_wall", 60.0, True, "#ff69b4", "bowel wall"),
    Label.BOWEL_CONTENT: LabelInfo(
        "bowel_wall", -500.0, True, "#ffc0cb", "bowel content (gas and fluid; bowel properties)"
    ),
    Label.STOMACH: LabelInfo("bowel_wall", 30.0, True, "#db7093", "stomach (bowel properties)"),
    Label.KIDNEY: LabelInfo("kidney", 170.0, True, "#8b008b", "kidneys"),
    Label.SPLEEN: LabelInfo("liver", 110.0, False, "#800000", "spleen (liver properties)"),
    Label.LUNG: LabelInfo("lung", -850.0, True, "#87ceeb", "lung base"),
    Label.DIAPHRAGM: LabelInfo("muscle", 50.0, True, "#cd5c5c", "diaphragm"),
    Label.HEART: LabelInfo(
        "muscle", 120.0, True, "#ff4500", "heart (myocardium and blood pool; muscle properties)"
    ),
    Label.COLLECTING_SYSTEM: LabelInfo(
        "gallbladder_bile",
        10.0,
        True,
        "#ffd700",
        "renal pelvis and calyces (urine; fluid properties)",
    ),
    Label.URETER: LabelInfo("muscle", 20.0, True, "#ffa500", "ureter (wall and urine; muscle)"),
    Label.RENAL_ARTERY: LabelInfo("blood", 190.0, True, "#b22200", "renal artery and branches"),
    Label.RENAL_VEIN: LabelInfo("blood", 150.0, True, "#3050d0", "renal vein and branches"),
    Label.ADRENAL: LabelInfo("muscle", 45.0, True, "#c71585", "adrenal gland (muscle properties)"),
    Label.BRONCHUS: LabelInfo(
        "lung", -950.0, True, "#e0ffff", "bronchi (air and cartilage wall; lung properties)"
    ),
    Label.PULMONARY_VESSEL: LabelInfo(
        "blood", 160.0, True, "#6a5acd", "pulmonary arteries and veins"
    ),
    Label.FISSURE: LabelInfo("lung", -750.0, True, "#ffffe0", "interlobar fissure (pleura)"),
    Label.SPINAL_CORD: LabelInfo(
        "muscle", 35.0, True, "#ffff00", "spinal cord (muscle properties)"
    ),
    Label.NERVE_ROOT: LabelInfo("muscle", 30.0, True, "#ffe4b5", "spinal nerve roots"),
    Label.KIDNEY_MEDULLA: LabelInfo("kidney_medulla", 140.0, True, "#9932cc", "renal medulla"),
    Label.PANCREAS: LabelInfo("pancreas", 100.0, True, "#daa520", "pancreas"),
    Label.FLUID_COLLECTION: LabelInfo(
        "gallbladder_bile",
        15.0,
        False,
        "#40e0d0",
        "fluid collection: abscess, biloma, ascites or effusion (fluid properties)",
    ),
    Label.PERIPHERAL_NERVE: LabelInfo(
        "muscle", 35.0, True, "#fff68f", "peripheral nerve, e.g. sciatic (muscle properties)"
    ),
    Label.LONG_BONE: LabelInfo(
        "bone", 700.0, True, "#fffaf0", "long bone, e.g. femur (cortex and marrow; cortical)"
    ),
}


def label_from_name(name: str) -> Label:
    """The :class:`Label` for a name such as ``"liver"`` or ``"PORTAL_VEIN"``."""
    key = name.strip().upper().replace("-", "_").replace(" ", "_")
    try:
        return Label[key]
    except KeyError:
        known = ", ".join(lbl.name.lower() for lbl in Label)
        raise InputError(f"unknown label name {name!r}; known: {known}") from None
