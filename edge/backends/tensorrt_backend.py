"""TensorRT backend: a prebuilt engine, pycuda pinned host buffers and device buffers, one CUDA stream.

Written against the TensorRT 10.3 / 11.x Python API (named I/O tensors,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``). Buffers are
allocated once, for the profile's largest shapes; each batch copies in
asynchronously, runs, and copies out on the same stream. The engine must
match this device (sidecar check: TensorRT version, GPU, source ONNX hash).
Not executed in CI (no TensorRT there); covered by tests marked ``tensorrt``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from skyedge.engines import EngineError, check_sidecar, engine_name

log = logging.getLogger(__name__)


class TensorRTBackend:
    """``infer`` takes and returns name -> array; batch (and time) may vary within the engine's profile."""

    name = "tensorrt"

    def __init__(self, package, batch_size: int, engine_dir: Path | None = None):
        import pycuda.driver as cuda
        import tensorrt as trt

        cuda.init()
        device = cuda.Device(0)
        self._ctx = device.retain_primary_context()
        self._ctx.push()
        try:
            major, minor = device.compute_capability()
            gpu = device.name()
            engines = Path(engine_dir) if engine_dir else package.path / "engines"
            path = engines / engine_name(package.precision, gpu, trt.__version__)
            check_sidecar(
                path,
                tensorrt_version=trt.__version__,
                gpu=gpu,
                compute_capability=f"{major}.{minor}",
                onnx_sha256=package.onnx_sha256,
            )
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
            if self.engine is None:
                raise EngineError(
                    f"{path}: TensorRT could not deserialize the engine; rebuild it with `skyedge engine`"
                )
            self.context = self.engine.create_execution_context()
            self.stream = cuda.Stream()
            names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
            is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
            self.input_names = [n for n in names if is_input[n]]
            self.output_names = [n for n in names if not is_input[n]]
            # Allocate for the largest shapes the profile allows, once.
            for name in self.input_names:
                largest = tuple(self.engine.get_tensor_profile_shape(name, 0)[2])
                if largest[0] < batch_size:
                    raise EngineError(
                        f"{path}: engine's largest batch is {largest[0]} but backend.batch_size is {batch_size}; "
                        "rebuild with a larger --batch"
                    )
                self.context.set_input_shape(name, largest)
            self._host, self._device = {}, {}
            for name in names:
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = trt.nptype(self.engine.get_tensor_dtype(name))
                self._host[name] = cuda.pagelocked_empty(int(np.prod(shape)), dtype)
                self._device[name] = cuda.mem_alloc(self._host[name].nbytes)
                self.context.set_tensor_address(name, int(self._device[name]))
            self._cuda = cuda
            log.info("TensorRT %s engine %s on %s", trt.__version__, path.name, gpu)
        finally:
            self._ctx.pop()

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copy in, execute and copy out on the backend's stream; returns copies the caller may keep."""
        cuda = self._cuda
        self._ctx.push()
        try:
            for name in self.input_names:
                array = np.ascontiguousarray(inputs[name], dtype=self._host[name].dtype)
                self.context.set_input_shape(name, array.shape)
                host = self._host[name][: array.size]
                host[:] = array.ravel()
                cuda.memcpy_htod_async(self._device[name], host, self.stream)
            if not self.context.execute_async_v3(self.stream.handle):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            shapes = {n: tuple(self.context.get_tensor_shape(n)) for n in self.output_names}
            for name in self.output_names:
                size = int(np.prod(shapes[name]))
                cuda.memcpy_dtoh_async(self._host[name][:size], self._device[name], self.stream)
            self.stream.synchronize()
            return {n: self._host[n][: int(np.prod(s))].reshape(s).copy() for n, s in shapes.items()}
        finally:
            self._ctx.pop()

    def close(self) -> None:
        """Free device memory and the context."""
        self._ctx.push()
        try:
            for buf in self._device.values():
                buf.free()
            self._device.clear()
            self.context = None
            self.engine = None
        finally:
            self._ctx.pop()
            self._ctx.detach()
