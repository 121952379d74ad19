"""The stylizing networks (huang, johnson, lite, lite2), named models and their cards (the zoo), ONNX export,
and where a network runs (PyTorch or onnxruntime)."""
