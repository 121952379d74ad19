"""The one ``--device`` resolver every command uses."""

import pytest
import torch

from vidstyle.device import resolve_device
from vidstyle.errors import ConfigError


def test_auto_and_none_follow_what_pytorch_sees():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(None).type == expected


def test_cpu_is_taken_as_given():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("spec", ["gpu0", "mps", "meta", "cuda:x", ""])
def test_unknown_or_unsupported_devices_are_one_line_config_errors(spec):
    with pytest.raises(ConfigError) as error:
        resolve_device(spec)
    assert "\n" not in str(error.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda:0", default_index=3)
