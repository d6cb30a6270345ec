"""skyedge.calibration: INT8 Q/DQ ONNX from a calibration set and the per-precision accuracy report."""
