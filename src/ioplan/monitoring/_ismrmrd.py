"""Complex MR series from ISMRMRD image files, read with the ``ismrmrd`` package.

ISMRMRD image files are HDF5, as the ISMRMRD toolkit and Gadgetron write them. The file
holds one group (``dataset`` by default, or the only group; otherwise name it); its image
series are the subgroups with ``header`` and ``data`` (``image_0``, ...), all read.
Images are complex (``image_type`` 5), or magnitude (1) + phase (2), or real (3) +
imaginary (4); with complex images present, they are used. Coil-combined images only
(one channel); 2D images or 3D slabs (split into their slices).

Geometry (ISMRMRD image header, DICOM patient coordinates): ``position`` is the centre of
the field of view, ``read_dir`` the direction of increasing column (x), ``phase_dir`` of
increasing row (y); the pixel spacing is ``field_of_view / matrix_size``. Voxel (0, 0) of
a slice lies at ``position - read_dir dx (nx - 1)/2 - phase_dir dy (ny - 1)/2``. (Some
ISMRMRD-to-DICOM converters put the corner of the field of view there instead: half a
voxel apart.) Slices are stacked along the normal as for DICOM.

Frames: ordered by ``repetition``, else ``acquisition_time_stamp``, else ``image_index``;
frame times from ``acquisition_time_stamp`` in ticks of ``time_stamp_ms`` (2.5 ms, the
convention of siemens_to_ismrmrd and Gadgetron; overridden by ``--frame-s``).
B0 from the XML header's ``acquisitionSystemInformation/systemFieldStrength_T``, TE from
``sequenceParameters/TE`` (ms; the one of the images' ``contrast`` index). Phase images
are radians unless ``phase_scale`` says otherwise (as for DICOM).
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ET
from functools import partial
from pathlib import Path

import numpy as np

from ioplan.errors import FileFormatError, InputError
from ioplan.imaging import DicomSliceHeader
from ioplan.monitoring._series import (
    ComplexSeries,
    Plane,
    combine_components,
    pick_roles,
    stack_planes,
)

__all__ = ["read_ismrmrd_series"]

_TYPES = {1: "magnitude", 2: "phase", 3: "real", 4: "imaginary", 5: "complex"}
ORDER_KEYS = ("repetition", "acquisition_time_stamp", "image_index")
TIME_KEYS = ("acquisition_time_stamp",)


def _ismrmrd():
    """The ``ismrmrd`` module; its import resets the warning filters, so it is contained."""
    try:
        with warnings.catch_warnings():
            import ismrmrd
    except ImportError:
        raise InputError(
            "reading ISMRMRD files needs the ismrmrd package: pip install ismrmrd"
        ) from None
    return ismrmrd


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unit(v, what: str, where: str) -> np.ndarray:
    a = np.asarray(v, float)
    n = float(np.linalg.norm(a))
    if not np.isfinite(n) or n < 1e-6:
        raise FileFormatError(f"{where}: image has no {what} (zero vector): cannot place it")
    return a / n


def _complex(a: np.ndarray) -> np.ndarray:
    return a.astype(np.complex128)


def _real(a: np.ndarray):
    """As DICOM planes load: (values, stored values, slope 1, intercept 0)."""
    return a.real.astype(np.float64), a.real, 1.0, 0.0


def _header_fields(xml: str | None) -> tuple[float | None, list[float], str]:
    """B0 (T), the echo times (ms) and the vendor from the XML header."""
    if not xml:
        return None, [], ""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise FileFormatError(f"the ISMRMRD XML header is not XML ({exc})") from None

    def texts(path):
        return [e.text.strip() for e in root.findall(path) if e.text and e.text.strip()]

    b0 = texts("./{*}acquisitionSystemInformation/{*}systemFieldStrength_T")
    te = texts("./{*}sequenceParameters/{*}TE")
    vendor = texts("./{*}acquisitionSystemInformation/{*}systemVendor")
    try:
        return (float(b0[0]) if b0 else None, [float(t) for t in te],
                vendor[0] if vendor else "")  # fmt: skip
    except ValueError:
        raise FileFormatError(
            f"the ISMRMRD XML header has a non-numeric B0 or TE: {b0} {te}"
        ) from None


def read_ismrmrd_series(path: str | Path, *, group: str | None = None,
                        phase_scale: str = "auto",
                        time_stamp_ms: float = 2.5) -> ComplexSeries:  # fmt: skip
    """Read an ISMRMRD image file into complex frames, with B0, TE and frame times.

    See the module documentation for the conventions.

    Raises
    ------
    ioplan.errors.FileFormatError
        Not an HDF5/ISMRMRD file, no images, multi-channel images.
    ioplan.errors.InputError
        Components that do not pair up, several echoes, the ``ismrmrd`` package missing.
    """
    mrd = _ismrmrd()
    import h5py

    path = Path(path)
    where = str(path)
    try:
        with h5py.File(path, "r") as f:
            groups = [k for k in f if isinstance(f[k], h5py.Group)]
            if group is None:
                if "dataset" in groups:
                    group = "dataset"
                elif len(groups) == 1:
                    group = groups[0]
                else:
                    raise FileFormatError(
                        f"{where}: holds {len(groups)} groups ({', '.join(groups[:5])}): name one"
                    )
            elif group not in groups:
                raise FileFormatError(f"{where}: no group {group!r} (has {', '.join(groups)})")
            g = f[group]
            image_paths = [
                k for k in g if isinstance(g[k], h5py.Group) and {"header", "data"} <= set(g[k])
            ]
            xml = g["xml"][0] if "xml" in g else None
    except OSError as exc:
        raise FileFormatError(f"{where}: not an HDF5 file ({_first_line(exc)})") from None
    if not image_paths:
        raise FileFormatError(f"{where}: group {group!r} holds no ISMRMRD images")
    if isinstance(xml, bytes):
        xml = xml.decode("utf-8", "replace")
    b0, te_list, vendor = _header_fields(xml)
    planes: list[Plane] = []
    contrasts = set()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the package's own deprecation notes
            ds = mrd.Dataset(str(path), group, mode="r")
            try:
                images = [
                    (ip, i, ds.read_image(ip, i))
                    for ip in image_paths
                    for i in range(ds.number_of_images(ip))
                ]
            finally:
                ds.close()
    except (OSError, LookupError, TypeError, ValueError, KeyError) as exc:
        raise FileFormatError(f"{where}: cannot read its images ({_first_line(exc)})") from None
    for ip, i, im in images:
        label = f"{path.name}[{ip}:{i}]"
        kind = _TYPES.get(int(im.image_type))
        if kind is None:
            continue  # RGB and other display images
        data = np.asarray(im.data)
        if data.shape[0] != 1:
            raise FileFormatError(
                f"{label}: {data.shape[0]} channels; combine the coils first (one channel)"
            )
        nx, ny, nz = (int(v) for v in im.matrix_size)
        fov = np.asarray(im.field_of_view, float)
        if nz == 1 and fov[2] <= 0:
            fov[2] = 1.0  # a 2D image without a thickness: used for a single slice only
        if fov[0] <= 0 or fov[1] <= 0 or fov[2] <= 0:
            raise FileFormatError(f"{label}: field_of_view must be > 0, got {tuple(fov)}")
        dx, dy, dz = fov[0] / nx, fov[1] / ny, fov[2] / nz
        read = _unit(im.read_dir, "read_dir", label)
        phase = _unit(im.phase_dir, "phase_dir", label)
        if abs(float(read @ phase)) > 1e-3:
            raise FileFormatError(f"{label}: read_dir and phase_dir are not orthogonal")
        normal = np.cross(read, phase)
        centre = np.asarray(im.position, float)
        contrasts.add(int(im.contrast))
        keys = {
            "repetition": float(im.repetition),
            "acquisition_time_stamp": float(im.acquisition_time_stamp),
            "image_index": float(im.image_index),
        }
        times = {"acquisition_time_stamp": float(im.acquisition_time_stamp) * time_stamp_ms / 1e3}
        for p in range(nz):
            pos = (centre - read * dx * (nx - 1) / 2 - phase * dy * (ny - 1) / 2
                   + normal * dz * (p - (nz - 1) / 2))  # fmt: skip
            h = DicomSliceHeader(
                path=Path(f"{label}:{p}"), series_uid=ip, rows=ny, columns=nx,
                row_cosine=tuple(read), column_cosine=tuple(phase),
                position_mm=tuple(float(v) for v in pos), pixel_spacing_mm=(dy, dx),
                slice_thickness_mm=dz, spacing_between_slices_mm=dz,
            )  # fmt: skip
            load = partial(_complex if kind == "complex" else _real, data[0, p])
            planes.append(Plane(h, kind, keys, times, load, group=f"{ip}/{im.image_series_index}"))
    if len(contrasts) > 1:
        raise InputError(
            f"{where}: images of {len(contrasts)} contrasts (echoes): one echo per series"
        )
    by_role: dict[str, list[Plane]] = {}
    for p in planes:
        by_role.setdefault(p.component, []).append(p)
    roles = pick_roles(by_role, where)
    stacked = []
    for role in roles:
        sets = {p.group for p in by_role[role]}
        if len(sets) > 1:
            raise InputError(
                f"{where}: the {role} images come from {len(sets)} image series "
                f"({', '.join(sorted(sets)[:4])}): keep one"
            )
        stacked.append(stack_planes(by_role[role], where, order_keys=ORDER_KEYS,
                                    time_keys=TIME_KEYS))  # fmt: skip
    z, grid, times, read_as = combine_components(roles, stacked, where, phase_scale=phase_scale,
                                                 manufacturer=vendor)  # fmt: skip
    contrast = contrasts.pop() if contrasts else 0
    te = None
    if te_list:
        te = te_list[contrast] if contrast < len(te_list) else None
        if te is None:
            raise InputError(f"{where}: the header lists {len(te_list)} TE, none for contrast "
                             f"{contrast}")  # fmt: skip
    return ComplexSeries(z, grid, times, b0, te, {"format": "ismrmrd", "group": group} | read_as)
