"""TensorRT backend: a loader that finds, checks and deserializes the package's engine, and a runner that executes it.

Written against the TensorRT 10.3 / 11.x Python API (named I/O tensors,
``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``); what
differs between the versions lives in :mod:`skyedge.engines`. The loader
(:func:`engine_from_package`) refuses an engine built for another TensorRT,
GPU or ONNX file (sidecar check). The runner allocates pycuda pinned host and
device buffers once, for the profile's largest shapes; each batch copies in
asynchronously, runs, and copies out on one stream. Not executed in CI (no
TensorRT there); covered by tests marked ``tensorrt``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skyedge.engines import EngineError, check_sidecar, engine_name, io_tensors

log = logging.getLogger(__name__)


@dataclass
class LoadedEngine:
    """A deserialized engine with the CUDA context it lives in (owned by the runner once handed over)."""

    path: Path
    engine: object
    runtime: object
    context: object  # pycuda primary context
    gpu: str


def engine_from_package(package, engine_dir: Path | None = None, dla_core: int | None = None) -> LoadedEngine:
    """The engine for this device (its GPU, or DLA core ``dla_core`` on a Jetson Orin), package precision and
    TensorRT version, checked against its sidecar."""
    import pycuda.driver as cuda
    import tensorrt as trt

    cuda.init()
    device = cuda.Device(0)
    ctx = device.retain_primary_context()
    ctx.push()
    try:
        major, minor = device.compute_capability()
        gpu = device.name()
        engines = Path(engine_dir) if engine_dir else package.path / "engines"
        path = engines / engine_name(package.precision, gpu, trt.__version__, package.graph, dla_core)
        check_sidecar(
            path,
            tensorrt_version=trt.__version__,
            gpu=gpu,
            compute_capability=f"{major}.{minor}",
            onnx_sha256=package.onnx_sha256,
            dla_core=dla_core,
        )
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if dla_core is not None:
            runtime.DLA_core = dla_core  # IRuntime: the DLA core an engine deserialized from now on runs on
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise EngineError(f"{path}: TensorRT could not deserialize the engine; rebuild it with `skyedge engine`")
    except BaseException:
        ctx.pop()
        ctx.detach()
        raise
    ctx.pop()
    return LoadedEngine(path, engine, runtime, ctx, gpu)


class TensorRTBackend:
    """Runs a :class:`LoadedEngine`; batch (and time) may vary within the engine's profile."""

    name = "tensorrt"

    def __init__(self, loaded: LoadedEngine, batch_size: int):
        import pycuda.driver as cuda
        import tensorrt as trt

        self._cuda, self._ctx, self.engine = cuda, loaded.context, loaded.engine
        self._runtime = loaded.runtime
        self._ctx.push()
        try:
            self.context = self.engine.create_execution_context()
            self.stream = cuda.Stream()
            self.input_names, self.output_names = io_tensors(self.engine, trt)
            # Allocate once, for the largest shapes the profile allows.
            for name in self.input_names:
                largest = tuple(self.engine.get_tensor_profile_shape(name, 0)[2])
                if largest[0] < batch_size:
                    raise EngineError(
                        f"{loaded.path}: engine's largest batch is {largest[0]} but a batch may hold {batch_size} "
                        f"inputs (backend.batch_size, times 4 with a pipeline's views: 4); rebuild with a larger --batch"
                    )
                self.context.set_input_shape(name, largest)
            self._host, self._device = {}, {}
            for name in self.input_names + self.output_names:
                shape = tuple(self.context.get_tensor_shape(name))
                dtype = trt.nptype(self.engine.get_tensor_dtype(name))
                self._host[name] = cuda.pagelocked_empty(int(np.prod(shape)), dtype)
                self._device[name] = cuda.mem_alloc(self._host[name].nbytes)
                self.context.set_tensor_address(name, int(self._device[name]))
            log.info("TensorRT %s engine %s on %s", trt.__version__, loaded.path.name, loaded.gpu)
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
