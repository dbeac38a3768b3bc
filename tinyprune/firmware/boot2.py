"""The RP2040 boot ROM's second stage: its CRC32, written into the linked ELF.

The boot ROM copies the first 256 bytes of flash to SRAM and runs them only when the CRC32 of
the first 252 (polynomial 0x04C11DB7, initial value 0xFFFFFFFF, no bit reflection, no final XOR:
the "MPEG-2" variant) equals the little-endian word in the last four. The code itself is
``tp_boot2`` in ``runtime/bsp/rp2040/tp_bsp_rp2040.c``, in section ``.boot2``; the CRC depends on
the assembled bytes, so the build fills it in after linking, before ``.bin``/``.hex`` are made.
"""

from __future__ import annotations

from pathlib import Path

from elftools.elf.elffile import ELFFile

from tinyprune.errors import CheckFailed

BOOT2_BYTES = 256
_POLY = 0x04C11DB7


def crc32_mpeg2(data: bytes) -> int:
    """CRC32 with polynomial 0x04C11DB7, init 0xFFFFFFFF, MSB first, no final XOR."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ _POLY) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def seal_boot2(elf: Path) -> int:
    """Write the CRC32 of ``.boot2``'s first 252 bytes into its last four; return the CRC.

    Raises:
        CheckFailed: the ELF has no 256-byte ``.boot2`` section.
    """
    with elf.open("rb") as f:
        section = ELFFile(f).get_section_by_name(".boot2")
        if section is None or section["sh_size"] != BOOT2_BYTES:
            raise CheckFailed(f"{elf.name}: no 256-byte .boot2 section (the RP2040 boot ROM's "
                              "second stage); the rp2040 board support provides it")
        offset = section["sh_offset"]
        code = section.data()[: BOOT2_BYTES - 4]
    crc = crc32_mpeg2(code)
    with elf.open("r+b") as f:
        f.seek(offset + BOOT2_BYTES - 4)
        f.write(crc.to_bytes(4, "little"))
    return crc
