"""Export: trained run -> verified model package (ONNX FP32/FP16, model card); TensorRT engines on the device."""
