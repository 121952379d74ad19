"""The stylizing networks (huang, johnson, lite), named models and their cards (the zoo), ONNX export,
and where a network runs (PyTorch or onnxruntime)."""
