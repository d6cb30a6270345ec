"""skyedge.export: PyTorch -> verified ONNX and FP16 ONNX; ONNX -> TensorRT engine on the device."""
