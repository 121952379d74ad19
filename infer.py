#!/usr/bin/env python3
"""Stylize a video with a named model: ``python infer.py clip.mp4 --model starwars_blue``."""

import sys

from vidstyle.cli import main

if __name__ == "__main__":
    sys.exit(main(["infer", *sys.argv[1:]]))
