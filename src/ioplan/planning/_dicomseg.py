"""DICOM-SEG export of a plan (highdicom): tumour, margin shell and predicted zone.

A DICOM segmentation must reference its source images, so the case image is first
written as an anonymous CT series (``ct/``); ``plan_seg.dcm`` then refers to it.
Both open in 3D Slicer (QuantitativeReporting / DCMQI) and in PACS viewers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ioplan.anatomy import Case
from ioplan.imaging import write_dicom_series

__all__ = ["write_plan_dicom_seg"]

# (label, SNOMED CT property category / type) per segment
_SEGMENTS = (
    ("tumour", ("49755003", "Morphologically abnormal structure"), ("108369006", "Neoplasm")),
    ("margin shell", ("91723000", "Anatomical structure"), ("10200004", "Liver")),
    ("predicted ablation zone", ("49755003", "Morphologically abnormal structure"),
     ("47351003", "Necrosis")),
)  # fmt: skip


def write_plan_dicom_seg(case: Case, masks: list[np.ndarray], folder: str | Path) -> Path:
    """Write ``folder/ct/IM*.dcm`` and ``folder/plan_seg.dcm``; return the SEG path."""
    import highdicom as hd
    import pydicom
    from pydicom.sr.coding import Code

    folder = Path(folder)
    # the folder keeps its name (a contract); the series carries the case's real modality
    modality = case.modality if case.modality in ("CT", "MR") else "CT"
    ct_dir = write_dicom_series(case.image, folder / "ct", modality=modality, overwrite=True)
    files = sorted(ct_dir.glob("IM*.dcm"))
    sources = [pydicom.dcmread(f) for f in files]
    # type 2 attributes the SEG copies: present and empty (anonymous series)
    for ds in sources:
        for kw in ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                   "ReferringPhysicianName", "AccessionNumber", "StudyID"):  # fmt: skip
            if kw not in ds:
                setattr(ds, kw, "")
    # slice order of the files = array order along z (write_dicom_series writes in order)
    frames = np.stack([np.stack([m[k] for m in masks], axis=-1) for k in range(len(files))])
    descriptions = []
    for i, (label, cat, typ) in enumerate(_SEGMENTS[: len(masks)], start=1):
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=i,
                segment_label=label,
                segmented_property_category=Code(cat[0], "SCT", cat[1]),
                segmented_property_type=Code(typ[0], "SCT", typ[1]),
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
                if i == 3
                else hd.seg.SegmentAlgorithmTypeValues.MANUAL,
                algorithm_identification=hd.AlgorithmIdentificationSequence(
                    name="ioplan", version="1", family=Code("123109", "DCM", "Manual Processing")
                )
                if i == 3
                else None,
            )
        )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames.astype(bool),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=100,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="ioplan",
        manufacturer_model_name="ioplan planner",
        software_versions="ioplan",
        device_serial_number="0",
    )
    out = folder / "plan_seg.dcm"
    seg.save_as(out)
    return out
