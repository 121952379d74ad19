"""Reading and writing media: video decode and probe, encode with audio, frame folders, still images,
Middlebury ``.flo`` files and HDF5 safety. Nothing here imports torch."""
