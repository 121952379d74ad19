"""Stylizing media with a trained model: the torch and onnx engines, the whole-video job, batches of
inputs, photos, live sources, the stabilizer and the colour controls."""
