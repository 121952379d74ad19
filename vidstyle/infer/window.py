"""A window that shows frames as they come, for ``vidstyle live``; q, Esc or closing it quits.

OpenCV's own window (``cv2.imshow``) needs an OpenCV built with a GUI, which the headless wheels
vidstyle depends on are not (``pip install opencv-contrib-python`` would put a second, conflicting
``cv2`` beside it). So the window is OpenCV's where that works, and otherwise Tk's, which ships with
Python on most systems (Debian/Ubuntu: ``apt install python3-tk``) and shows images through Pillow.
"""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np

from vidstyle.errors import ConfigError

QUIT_KEYS = ("q", "Escape")


def opencv_has_gui() -> bool:
    """True when this OpenCV was built with a GUI backend (GTK, Qt, ...), i.e. cv2.imshow works."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() not in ("", "NONE")
    return False


def _no_display_reason() -> str | None:
    has_display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not has_display:
        return "no display (DISPLAY is not set)"
    return None


class TkWindow:
    """A Tk window holding one image; :meth:`show` returns False once the user asked to quit."""

    def __init__(self, title: str):
        try:
            import tkinter

            from PIL import ImageTk  # noqa: F401  (fails here, not at the first frame, if missing)
            self._root = tkinter.Tk()
        except Exception as exc:     # no tkinter, no Tk library, display refused: all say "no window"
            raise ConfigError(f"cannot open a window ({str(exc).strip() or type(exc).__name__}); "
                              f"use --no-window with --output") from None
        self._root.title(title)
        self._label = tkinter.Label(self._root, borderwidth=0)
        self._label.pack()
        self._open = True
        self._root.bind("<Key>", self._key)
        self._root.protocol("WM_DELETE_WINDOW", self.close)
        self._image = None

    def _key(self, event) -> None:
        if event.keysym in QUIT_KEYS:
            self.close()

    def show(self, rgb: np.ndarray) -> bool:
        """Display uint8 RGB (H, W, 3); False when the window was closed or q/Esc pressed."""
        from PIL import Image, ImageTk

        if self._open:
            self._image = ImageTk.PhotoImage(Image.fromarray(rgb))   # kept: Tk holds no reference
            self._label.configure(image=self._image)
            self._root.update()
        return self._open

    def close(self) -> None:
        if self._open:
            self._open = False
            self._root.destroy()


class OpenCVWindow:
    """cv2.imshow's window, where OpenCV has a GUI."""

    def __init__(self, title: str):
        self._title = title
        self._open = True
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)

    def show(self, rgb: np.ndarray) -> bool:
        if self._open:
            cv2.imshow(self._title, np.ascontiguousarray(rgb[..., ::-1]))
            key = cv2.waitKey(1) & 0xFF
            closed = cv2.getWindowProperty(self._title, cv2.WND_PROP_VISIBLE) < 1
            if key in (ord("q"), 27) or closed:
                self.close()
        return self._open

    def close(self) -> None:
        if self._open:
            self._open = False
            cv2.destroyWindow(self._title)


def open_window(title: str) -> TkWindow | OpenCVWindow:
    """A window for frames; ConfigError (one line, suggesting --no-window) where none can open."""
    reason = _no_display_reason()
    if reason:
        raise ConfigError(f"cannot open a window: {reason}; use --no-window (with --output FILE or -)")
    return OpenCVWindow(title) if opencv_has_gui() else TkWindow(title)


def draw_rate(rgb: np.ndarray, frames_per_second: float) -> np.ndarray:
    """A copy of uint8 RGB (H, W, 3) with "N.N fps" in the top-left corner, white on black."""
    out = np.ascontiguousarray(rgb).copy()
    text = f"{frames_per_second:.1f} fps"
    scale = max(0.4, out.shape[0] / 720)
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (w + 8, h + base + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (4, h + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out
