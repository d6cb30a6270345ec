"""Real stamp sequences from ZTF alert packets (Avro; the public alert stream and its archive at IPAC).

A packet is one detection of one object: ``objectId``, the ``candidate`` record (``jd``, ``fid`` the band,
``magzpsci``, ``exptime``, ``fwhm``, ...) and a triplet of 63 x 63 gzip-compressed FITS cutouts
(``cutoutScience``, ``cutoutTemplate``, ``cutoutDifference``; schema 3.3 and later). The earlier detections in
``prv_candidates`` carry no cutouts, so an object's sequence is every packet of it that is read: files (one or
more packets each) or folders of ``*.avro`` files, grouped by ``objectId``.

The model reads one band: an object seen in several keeps the band with the most epochs (said in ``sources``).
Cutouts are in DN; the gain is read from a cutout's header when it has one, else the noise is measured
(:func:`~skyedge.training.data.survey_epochs.epoch_sequence`). Alerts give no airmass: it is assumed, and said.
Needs ``fastavro`` (the ``train`` extra).
"""

from __future__ import annotations

import gzip
import io
from collections import defaultdict
from pathlib import Path

import numpy as np

from skyedge.training.data.survey_epochs import StampSequence, archive_files, centre_cut, epoch_sequence

CUTOUTS = {"science": "cutoutScience", "reference": "cutoutTemplate", "difference": "cutoutDifference"}
BANDS = {1: "g", 2: "r", 3: "i"}
JD_TO_MJD = 2400000.5


def _cutout(packet: dict, role: str, where: str):
    """(image, header) of one of a packet's cutouts."""
    from astropy.io import fits

    cut = packet.get(CUTOUTS[role])
    if not cut or not cut.get("stampData"):
        raise ValueError(f"{where}: no {CUTOUTS[role]} in the packet")
    data = cut["stampData"]
    try:
        data = gzip.decompress(data)
    except OSError:
        pass  # some archives store the FITS bytes uncompressed
    try:
        with fits.open(io.BytesIO(data)) as hdus:
            return np.asarray(hdus[0].data, dtype=np.float64), dict(hdus[0].header)
    except OSError as exc:
        raise ValueError(f"{where}: {CUTOUTS[role]} is not a FITS image ({exc})") from None


def read_packets(path: Path) -> list[dict]:
    """Every alert packet in one Avro file."""
    try:
        import fastavro
    except ImportError:
        raise ValueError(f"{path}: reading ZTF alert packets needs fastavro (pip install 'skyedge[train]')") from None
    try:
        with open(path, "rb") as fh:
            return list(fastavro.reader(fh))
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not an Avro alert file ({exc})") from None


def _sequence(object_id: str, packets: list[tuple[Path, dict]], zero_point, stamp_size) -> StampSequence:
    bands = defaultdict(list)
    for f, p in packets:
        bands[p["candidate"].get("fid")].append((f, p))
    fid = max(bands, key=lambda b: (len(bands[b]), -(b or 0)))
    chosen = sorted(bands[fid], key=lambda fp: fp[1]["candidate"]["jd"])
    sources = {"band": f"{BANDS.get(fid, fid)}"}
    if len(bands) > 1:
        others = ", ".join(f"{BANDS.get(b, b)} ({len(v)})" for b, v in bands.items() if b != fid)
        sources["band"] += f"; other bands left out: {others}"
    triplets = {role: [] for role in CUTOUTS}
    gains, cols = [], defaultdict(list)
    for f, p in chosen:
        where = f"{f} (objectId {object_id}, candid {p.get('candid')})"
        for role in CUTOUTS:
            image, header = _cutout(p, role, where)
            triplets[role].append(centre_cut(image, stamp_size, Path(where)))
            if role == "science":
                gains.append(header.get("GAIN"))
        c = p["candidate"]
        cols["mjd"].append(c["jd"] - JD_TO_MJD)
        for key, field in (("zero_point", "magzpsci"), ("exptime", "exptime"), ("fwhm", "fwhm")):
            cols[key].append(c.get(field))
    shapes = {s.shape for role in triplets.values() for s in role}
    if len(shapes) > 1:
        raise ValueError(f"objectId {object_id}: cutouts of different sizes {sorted(shapes)} (an edge of the chip?); "
                         "give a stamp size to cut them")
    values, sources["mjd"] = {"mjd": np.array(cols["mjd"])}, "alert:jd"
    for key, field in (("zero_point", "magzpsci"), ("exptime", "exptime"), ("fwhm", "fwhm")):
        if all(v is not None for v in cols[key]):
            values[key], sources[key] = np.array(cols[key], dtype=np.float64), f"alert:{field}"
    if all(g is not None for g in gains):
        values["gain"], sources["gain"] = np.array(gains, dtype=np.float64), "cutout header:GAIN"
    if "zero_point" in values and "gain" in values:
        values["zero_point"] = values["zero_point"] + 2.5 * np.log10(values["gain"])  # DN -> electrons
    elif "zero_point" in values:
        sources["zero_point"] += " (for DN)"
    files = sorted({f for f, _ in chosen})
    return epoch_sequence(
        object_id,
        files[0].parent / object_id,
        np.stack(triplets["science"]),
        values,
        sources,
        zero_point,
        reference=np.stack(triplets["reference"]),
        difference=np.stack(triplets["difference"]),
        files=files,
    )


def read_ztf_alerts(paths, zero_point: float | None = None, stamp_size: int | None = None) -> list[StampSequence]:
    """One sequence per ``objectId`` among the alert packets in ``paths`` (``*.avro`` files, or folders of them,
    searched recursively), sorted by objectId."""
    files = archive_files(paths, lambda d: d.rglob("*.avro"), "ZTF alert packets (*.avro)")
    by_object: dict[str, list[tuple[Path, dict]]] = defaultdict(list)
    for f in files:
        for packet in read_packets(f):
            if "objectId" not in packet or "candidate" not in packet or "jd" not in (packet["candidate"] or {}):
                raise ValueError(f"{f}: not a ZTF alert packet (needs objectId and candidate.jd)")
            by_object[str(packet["objectId"])].append((f, packet))
    return [_sequence(o, by_object[o], zero_point, stamp_size) for o in sorted(by_object)]
