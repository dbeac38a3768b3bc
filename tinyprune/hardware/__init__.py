"""Real boards: flash a firmware through its debug probe (pyOCD), read its result lines from its
serial port (pyserial) and turn them into the same report as the emulator's.

- :mod:`~tinyprune.hardware.flash`: ``tinyprune flash`` (probe, program, reset).
- :mod:`~tinyprune.hardware.monitor`: reading ``@tp`` lines from a port until ``@tp end``.
- :mod:`~tinyprune.hardware.report`: the board's figures in a build's report.
- :mod:`~tinyprune.hardware.run`: ``tinyprune monitor`` (with or without a build folder).
"""
