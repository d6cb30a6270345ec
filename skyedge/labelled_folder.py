"""A labelled folder, ``DIR/<class>/<frame>``: what ``skyedge label`` writes and both its readers walk alike.

Training's ``image_folder`` source and ``skyedge adapt`` read the same folders, so they agree here on what is a
frame: an image file (:data:`skyedge.imageio.IMAGE_SUFFIXES`) in a class folder, not a frame's painted cloud
(:mod:`skyedge.painted_cloud`), and not a hidden file: a folder copied from a Mac carries ``._<name>.jpg`` resource
files that look like frames by name and are not images.
"""

from __future__ import annotations

from pathlib import Path

from skyedge.imageio import IMAGE_SUFFIXES
from skyedge.painted_cloud import is_mask


def class_folders(root: Path) -> list[Path]:
    """The class folders under ``root``, sorted by name; hidden ones left out."""
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


def is_frame(path: Path) -> bool:
    """Whether ``path`` is a frame: an image file, not painted cloud, not hidden."""
    return path.is_file() and not path.name.startswith(".") and path.name.lower().endswith(IMAGE_SUFFIXES) and not is_mask(path)


def frames_in(folder: Path) -> list[Path]:
    """The frames of one class folder, sorted by name."""
    return sorted(f for f in Path(folder).iterdir() if is_frame(f))


def frames_under(root: Path, out: Path | None = None) -> list[Path]:
    """Every frame under ``root`` and its sub-folders (a camera's folder, a pipeline's ``collect:`` folder with its
    day folders), sorted, leaving out painted cloud, hidden files and anything under ``out`` (a labelled folder kept
    inside it): what ``skyedge label`` shows and ``skyedge star-labels`` reads alike."""
    skip = Path(out).resolve() if out is not None else None
    return sorted(p for p in Path(root).rglob("*") if is_frame(p) and (skip is None or skip not in p.resolve().parents))


def copy_name(root: Path, frame: Path) -> str:
    """The name a frame under ``root`` is labelled by: its path from ``root``, folders joined by ``__``, since frames
    of different day folders (a pipeline's ``collect:`` folder) may share a name."""
    return str(Path(frame).relative_to(root)).replace("/", "__")


def labelled_files(root: Path) -> list[tuple[Path, str]]:
    """``(frame, class)`` for every frame under ``root``, by class then name."""
    return [(f, d.name) for d in class_folders(root) for f in frames_in(d)]
