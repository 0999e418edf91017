"""Segmentations as other tools write them, read back onto the image grid.

Each expected count comes from the arrays the test builds, never from the reader.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_test_dicom_seg
from ioplan.errors import FileFormatError, GeometryMismatchError
from ioplan.imaging import (
    Grid,
    Volume,
    labels_on_grid,
    read_segmentation,
    write_dicom_series,
    write_nifti,
)

# anisotropic spacing and a non-zero origin, so that a swapped axis cannot pass unseen
G = Grid((8, 10, 12), (2.0, 1.5, 1.0), (-20.0, 5.0, 30.0))


def _blocks() -> np.ndarray:
    seg = np.zeros(G.shape, np.uint8)
    seg[1:6, 2:8, 3:10] = 1  # 5 * 6 * 7 = 210 voxels
    seg[2:4, 3:5, 4:6] = 2  # 2 * 2 * 2 = 8 voxels, inside the first
    seg[6:8, 0:3, 0:2] = 3  # 2 * 3 * 2 = 12 voxels
    return seg


def test_a_folder_of_masks(tmp_path):
    seg = _blocks()
    folder = tmp_path / "masks"
    folder.mkdir()
    for name, v in (("liver", 1), ("tumor", 2), ("scapula_left", 3)):
        write_nifti(Volume((seg == v).astype(np.uint8), G), folder / f"{name}.nii.gz")
    write_nifti(Volume(np.zeros(G.shape, np.uint8), G), folder / "spleen.nii.gz")  # empty
    s = read_segmentation(folder)
    assert s.kind == "mask folder"
    assert set(s.names) == {"liver", "tumor", "scapula_left"}  # the empty mask is skipped
    arr = s.labels.array
    assert np.count_nonzero(arr == s.names["liver"]) == 210 - 8
    assert np.count_nonzero(arr == s.names["tumor"]) == 8
    assert np.count_nonzero(arr == s.names["scapula_left"]) == 12
    assert s.labels.grid.mismatch(G) is None


def test_masks_on_different_grids_are_refused(tmp_path):
    folder = tmp_path / "masks"
    folder.mkdir()
    write_nifti(Volume(np.ones(G.shape, np.uint8), G), folder / "a.nii.gz")
    other = Grid((8, 10, 13), G.spacing_mm, G.origin_mm)
    write_nifti(Volume(np.ones(other.shape, np.uint8), other), folder / "b.nii.gz")
    with pytest.raises(FileFormatError, match=r"b\.nii\.gz"):
        read_segmentation(folder)


def test_dicom_seg_written_with_highdicom(tmp_path):
    import pydicom

    seg = _blocks()
    write_dicom_series(Volume(np.zeros(G.shape, np.int16), G), tmp_path / "ct")
    sources = [pydicom.dcmread(p) for p in sorted((tmp_path / "ct").iterdir())]
    sources.sort(key=lambda d: float(d.ImagePositionPatient[2]))
    for d in sources:  # ioplan writes no patient or study details; highdicom copies them
        for key in ("PatientName", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "AccessionNumber", "StudyID"):  # fmt: skip
            if key not in d:
                setattr(d, key, "")
    # frame k is the slice at z = origin + k * 2 mm: array row k
    z = [round((float(d.ImagePositionPatient[2]) - G.origin_mm[2]) / 2.0) for d in sources]
    assert z == list(range(G.shape[0]))
    masks = np.stack([seg == 1, seg == 2], axis=-1).astype(np.uint8)
    write_test_dicom_seg(sources, masks, ["Liver", "Tumour"], tmp_path / "seg.dcm")
    s = read_segmentation(tmp_path / "seg.dcm")
    assert s.kind == "dicom-seg"
    assert s.names == {"Liver": 1, "Tumour": 2}
    on, _ = labels_on_grid(s.labels, G)
    assert np.count_nonzero(on.array == 1) == 210 - 8
    assert np.count_nonzero(on.array == 2) == 8
    np.testing.assert_array_equal(on.array == 2, seg == 2)


def _write_seg_nrrd(path, layers: np.ndarray, segments: list[tuple[str, int, int | None]]) -> None:
    """A Slicer segmentation written by hand: raw NRRD, layers as the fastest axis."""
    nz, ny, nx = G.shape
    sz, sy, sx = G.spacing_mm
    head = [
        "NRRD0004",
        "type: unsigned char",
        "dimension: 4",
        "space: left-posterior-superior",
        f"sizes: {layers.shape[0]} {nx} {ny} {nz}",
        f"space directions: none ({sx},0,0) (0,{sy},0) (0,0,{sz})",
        "kinds: list domain domain domain",
        "endian: little",
        "encoding: raw",
        "space origin: ({},{},{})".format(*G.origin_mm),
    ]
    for k, (name, value, layer) in enumerate(segments):
        head += [f"Segment{k}_Name:={name}", f"Segment{k}_LabelValue:={value}",
                 f"Segment{k}_ID:=Segment_{k}"]  # fmt: skip
        if layer is not None:
            head.append(f"Segment{k}_Layer:={layer}")
    # file order: layer fastest, then x, y, z; our array is (layer, z, y, x)
    data = np.ascontiguousarray(np.transpose(layers, (1, 2, 3, 0))).astype(np.uint8)
    path.write_bytes(("\n".join(head) + "\n\n").encode() + data.tobytes())


def test_slicer_seg_nrrd_with_two_layers(tmp_path):
    seg = _blocks()
    layer0 = np.where(seg == 3, 5, np.where(seg >= 1, 1, 0))  # liver (with the tumour) 1, other 5
    layer1 = (seg == 2).astype(np.uint8) * 1  # the tumour overlaps the liver: its own layer
    p = tmp_path / "case.seg.nrrd"
    _write_seg_nrrd(p, np.stack([layer0, layer1]), [("liver", 1, 0), ("bone x", 5, 0),
                                                     ("tumor", 1, 1)])  # fmt: skip
    s = read_segmentation(p)
    assert s.kind == "slicer seg.nrrd"
    assert set(s.names) == {"liver", "bone x", "tumor"}
    arr = s.labels.array
    assert s.labels.grid.mismatch(G) is None
    assert np.count_nonzero(arr == s.names["tumor"]) == 8  # later segment wins where they overlap
    assert np.count_nonzero(arr == s.names["liver"]) == 210 - 8
    assert np.count_nonzero(arr == s.names["bone x"]) == 12


def test_flipped_and_permuted_labels_come_back_exactly():
    """The same voxels stored x-first and x reversed: on the image grid, the same array."""
    seg = _blocks()
    arr = np.ascontiguousarray(seg.transpose(2, 1, 0)[::-1])  # axes (x reversed, y, z)
    nz, ny, nx = G.shape
    sz, sy, sx = G.spacing_mm
    ox, oy, oz = G.origin_mm
    # column j of direction: the LPS axis of array axis j (-x, +y, +z)
    direction = ((-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    g2 = Grid((nx, ny, nz), (sx, sy, sz), (ox + (nx - 1) * sx, oy, oz), direction)
    on, note = labels_on_grid(Volume(arr, g2), G)
    np.testing.assert_array_equal(on.array, seg)
    assert note is not None and "resampled" in note


def test_coarser_sub_volume_labels_are_resampled():
    """Labels at twice the spacing over part of the image: each coarse voxel's centre lies
    midway between two fine centres along each axis, so nearest neighbour gives it exactly
    the 2 x 2 x 2 fine voxels around it (no ties)."""
    sz, sy, sx = G.spacing_mm
    ox, oy, oz = G.origin_mm
    coarse = Grid(
        (3, 4, 5), (2 * sz, 2 * sy, 2 * sx), (ox + 0.5 * sx, oy + 0.5 * sy, oz + 0.5 * sz)
    )
    lab = np.zeros(coarse.shape, np.uint8)
    lab[1, 1:3, 2:5] = 7  # 1 * 2 * 3 = 6 coarse voxels
    on, note = labels_on_grid(Volume(lab, coarse), G)
    assert np.count_nonzero(on.array == 7) == 6 * 8
    assert "spacing" in note


def test_labels_of_another_place_or_partly_outside_are_refused():
    far = Grid(G.shape, G.spacing_mm, (1000.0, 5.0, 30.0))
    with pytest.raises(GeometryMismatchError, match="do not overlap"):
        labels_on_grid(Volume(_blocks(), far), G)
    shifted = Grid(G.shape, G.spacing_mm, (G.origin_mm[0] + 5.0, 5.0, 30.0))
    with pytest.raises(GeometryMismatchError, match="outside the image"):
        labels_on_grid(Volume(_blocks(), shifted), G)


def test_labels_of_the_whole_scan_on_a_cropped_image():
    """The image is a crop of the segmented scan (its first 3 x columns cut away): the
    structures that go on beyond it (values 1 and 3 here) lose their voxels outside, with a
    note that counts them; a target (value 2) beyond the edge is refused, and so is
    everything without ``may_cut`` (as before)."""
    seg = _blocks()
    crop = Grid((8, 10, 9), G.spacing_mm, (G.origin_mm[0] + 3 * G.spacing_mm[2], 5.0, 30.0))
    names = {1: "liver", 3: "rib"}
    on, note = labels_on_grid(Volume(seg, G), crop, may_cut=names.get)
    np.testing.assert_array_equal(on.array, seg[:, :, 3:])  # the same voxels, no resampling
    # recount of what was cut: columns x 0-2 of the labels
    cut = seg[:, :, :3]
    n1, n3 = int(np.sum(cut == 1)), int(np.sum(cut == 3))
    assert n1 == 0 and n3 == 12  # value 1 starts at x = 3; value 3 lies in x 0-1
    assert f"{n3} labelled voxels outside it were left out (rib {n3})" in note
    # the tumour (value 2) cut by the edge: refused
    crop2 = Grid((8, 10, 7), G.spacing_mm, (G.origin_mm[0] + 5 * G.spacing_mm[2], 5.0, 30.0))
    with pytest.raises(GeometryMismatchError, match="value 2, which must lie wholly inside"):
        labels_on_grid(Volume(seg, G), crop2, may_cut=names.get)
    with pytest.raises(GeometryMismatchError, match="outside the image"):
        labels_on_grid(Volume(seg, G), crop)
    # an image that reaches beyond the labels' grid is no crop of the labelled scan: its
    # labels are of another scan, cut or not
    beyond = Grid((8, 10, 12), G.spacing_mm, (G.origin_mm[0] + 3 * G.spacing_mm[2], 5.0, 30.0))
    with pytest.raises(GeometryMismatchError, match="outside the image"):
        labels_on_grid(Volume(seg, G), beyond, may_cut=names.get)


def test_older_slicer_files_with_one_layer_per_segment(tmp_path):
    """Before Slicer 4.11 a .seg.nrrd held one binary layer per segment and no Layer field."""
    seg = _blocks()
    p = tmp_path / "old.seg.nrrd"
    layers = np.stack([(seg == 1), (seg == 3)]).astype(np.uint8)
    _write_seg_nrrd(p, layers, [("liver", 1, None), ("spleen", 1, None)])
    s = read_segmentation(p)
    assert np.count_nonzero(s.labels.array == s.names["liver"]) == 210 - 8
    assert np.count_nonzero(s.labels.array == s.names["spleen"]) == 12
