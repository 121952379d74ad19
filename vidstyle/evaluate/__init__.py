"""Measuring stylized video: temporal-consistency and fidelity metrics, the published definitions of
warping error, ground-truth flow, and the reports and plots of ``vidstyle metrics``."""
