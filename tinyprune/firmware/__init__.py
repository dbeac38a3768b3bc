"""Firmware stage: boards, board support and the cross toolchain."""

from tinyprune.firmware.boards import Board, board_names, list_boards, load_board
from tinyprune.firmware.build import Firmware, build_firmware, render_harness

__all__ = [
    "Board",
    "Firmware",
    "board_names",
    "build_firmware",
    "list_boards",
    "load_board",
    "render_harness",
]
