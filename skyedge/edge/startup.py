"""Every path a deployment names, checked before anything starts, so a wrong path is a config error, not a traceback.

Folders that are read must exist and be listable; files that are read must
exist and be readable; files that are written (state, outbox, audit log) must
be creatable where they are configured. Writability is tried for real (a
file is created and removed), because permission bits do not tell the whole
story (read-only mounts, root, network shares).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from skyedge.edge.config_observatory import geometry_file
from skyedge.edge.sources.folder import excluded_below
from skyedge.edge.sources.state import STATE_FILE

Problem = tuple[tuple, str]


def _readable_dir(path: Path) -> str | None:
    if not path.exists():
        return f"{path} is not a directory (it does not exist)"
    if not path.is_dir():
        return f"{path} is not a directory (it is a file)"
    try:
        next(os.scandir(path), None)
    except OSError as exc:
        return f"{path} cannot be listed ({exc.strerror})"
    return None


def _readable_file(path: Path) -> str | None:
    if not path.exists():
        return f"{path} does not exist"
    if path.is_dir():
        return f"{path} is a directory, not a file"
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror})"
    return None


def _writable_file(path: Path) -> str | None:
    """Whether ``path`` can be opened for writing, creating its missing parent folders as the runtime would."""
    if path.is_dir():
        return f"{path} is a directory; give a file name"
    if path.exists():
        try:
            with open(path, "ab"):
                pass
        except OSError as exc:
            return f"{path} cannot be written ({exc.strerror})"
        return None
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".skyedge-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot create {path} ({exc.strerror} in {parent})"
    return None


def _collected_reread(pipeline) -> str | None:
    """Why the collected copies would come back as new frames: the collect folder inside a folder the source
    searches recursively, not excluded (it would collect its own copies again, without end)."""
    src = pipeline.source
    if src.kind != "directory" or not src.recursive:
        return None
    watched, collect = os.path.realpath(src.path), os.path.realpath(pipeline.collect.path)
    if os.path.commonpath([watched, collect]) != watched:
        return None
    relative = os.path.relpath(collect, watched).replace(os.sep, "/")
    if relative != "." and (excluded_below(src.exclude, relative) or any(part.startswith(".") for part in relative.split("/"))):
        return None  # left out, or hidden (hidden folders are never searched)
    return (
        f"{pipeline.collect.path} is inside source.path {src.path}, which is searched recursively: every collected "
        f"copy would be read again as a new frame; put it elsewhere"
        + ("" if relative == "." else f" or add {relative!r} to source.exclude")
    )


def path_problems(cfg) -> list[Problem]:
    """(key path, message) for every configured path that cannot be used as configured."""
    found: list[Problem] = []

    def check(where: tuple, problem: str | None, hint: str = "") -> None:
        if problem:
            found.append((where, problem + hint))

    check(("model", "package"), _readable_dir(Path(cfg.model.package)))
    for i, p in enumerate(cfg.pipelines):
        src = p.source
        if src.kind in ("directory", "fits-sequence"):
            where = ("pipelines", i, "source")
            folder = _readable_dir(Path(src.path))
            check((*where, "path"), folder)
            if src.state_file is not None:
                check((*where, "state_file"), _writable_file(Path(src.state_file)))
            elif folder is None:
                hint = "; the watched folder is read-only here: set source.state_file to a writable place"
                check((*where, "path"), _writable_file(Path(src.path) / STATE_FILE), hint)
            if src.kind == "fits-sequence":
                for key in ("catalog", "reference"):
                    if getattr(src, key) is not None:
                        check((*where, key), _readable_file(Path(getattr(src, key))))
        for key in ("dark", "flat"):
            value = getattr(p.preprocess, key)
            if value is not None:
                check(("pipelines", i, "preprocess", key), _readable_file(Path(value)))
        if p.preprocess.mask.image is not None:
            check(("pipelines", i, "preprocess", "mask", "image"), _readable_file(Path(p.preprocess.mask.image)))
        if p.collect is not None:
            folder = Path(p.collect.path)
            problem = f"{folder} is a file; give a folder" if folder.is_file() else _writable_file(folder / ".probe")
            check(("pipelines", i, "collect", "path"), problem or _collected_reread(p))
        if p.stars is not None:
            geometry = geometry_file(p)
            problem = _readable_file(geometry) if geometry.exists() else _writable_file(geometry)
            check(("pipelines", i, "stars", "geometry"), problem)
        if p.weather_files is not None:
            for key in ("boltwood", "weather_watcher"):
                if getattr(p.weather_files, key) is not None:
                    check(("pipelines", i, "weather_files", key), _writable_file(Path(getattr(p.weather_files, key))))
    if cfg.reporters.jsonl is not None:
        check(("reporters", "jsonl", "path"), _writable_file(Path(cfg.reporters.jsonl.path)))
    mqtt = cfg.reporters.mqtt
    if mqtt is not None:
        from skyedge.edge.reporters.mqtt import default_queue_path

        queue = Path(mqtt.queue_path) if mqtt.queue_path else default_queue_path(cfg.device)
        check(("reporters", "mqtt", "queue_path"), _writable_file(queue))
        if mqtt.password_file is not None:
            check(("reporters", "mqtt", "password_file"), _readable_file(Path(mqtt.password_file)))
        if mqtt.tls is not None:
            for key in ("ca_file", "cert_file", "key_file"):
                value = getattr(mqtt.tls, key)
                if value is not None:
                    check(("reporters", "mqtt", "tls", key), _readable_file(Path(value)))
    return found
