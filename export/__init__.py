"""Export and measurement: parameter/MAC reports, ONNX / torch.compile / TensorRT exports, latency."""
