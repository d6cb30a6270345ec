"""OpenCV ``VideoCapture``: a V4L2 index, an RTSP URL or a GStreamer pipeline string (nvarguscamerasrc on Jetson).

A camera that drops is reopened with exponential back-off; the failure and
the recovery are yielded as :class:`SourceFailed` / :class:`SourceRecovered`
so the runtime reports them.
"""

from __future__ import annotations

import logging
import threading
import time

from skyedge.edge.sources import RawFrame, SourceFailed, SourceRecovered

log = logging.getLogger(__name__)


class CameraSource:
    """Frames from a capture; ``once`` reads until the stream ends or fails (a video file, a quick check)."""

    def __init__(self, spec, once: bool, stop_event: threading.Event):
        self.spec, self.once, self.stop = spec, once, stop_event
        self.counter = 0
        self.cap = None

    def _open(self):
        import cv2

        api = {"any": cv2.CAP_ANY, "v4l2": cv2.CAP_V4L2, "ffmpeg": cv2.CAP_FFMPEG, "gstreamer": cv2.CAP_GSTREAMER}
        cap = cv2.VideoCapture(self.spec.uri, api[self.spec.api])
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def __iter__(self):
        delay = self.spec.reconnect_initial_s
        failed = False
        while not self.stop.is_set():
            if self.cap is None:
                self.cap = self._open()
                if self.cap is None:
                    if not failed:
                        yield SourceFailed(str(self.spec.uri), f"camera {self.spec.uri!r} cannot be opened")
                        failed = True
                    if self.once:
                        return
                    self.stop.wait(delay)
                    delay = min(delay * 2, self.spec.reconnect_max_s)
                    continue
            ok, frame = self.cap.read()
            if not ok or frame is None:
                self.cap.release()
                self.cap = None
                if self.once and self.counter:
                    return  # the end of a recorded stream
                if not failed:
                    yield SourceFailed(str(self.spec.uri), f"camera {self.spec.uri!r} stopped delivering frames")
                    failed = True
                if self.once:
                    return
                continue
            if failed:
                log.info("camera %s recovered", self.spec.uri)
                failed, delay = False, self.spec.reconnect_initial_s
                yield SourceRecovered(str(self.spec.uri), f"camera {self.spec.uri!r} delivers frames again")
            import cv2

            image = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else frame
            self.counter += 1
            yield RawFrame(f"frame-{self.counter:08d}", str(self.spec.uri), image, captured=time.time(), clock="camera")
            if self.spec.interval_s:
                self.stop.wait(self.spec.interval_s)

    def stores(self) -> list:
        """A camera keeps nothing on disk."""
        return []

    def close(self) -> None:
        """Release the capture."""
        if self.cap is not None:
            self.cap.release()
            self.cap = None
