#!/usr/bin/env python3
"""Train a temporally consistent style model.

``python train_temporal.py --style IMG --flows flows/ --name NAME``
"""

import sys

from vidstyle.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
