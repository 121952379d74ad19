"""Optical flow and its reliability mask (:mod:`.optical`), the HDF5 clip file (:mod:`.flowstore`), the
precompute batch job, per-pair statistics and flow pictures. numpy, OpenCV and h5py only: no torch."""
