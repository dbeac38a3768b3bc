# STM32 RCC as the tinyprune BSP needs it: registers read back what was written; the ready bit
# of each oscillator and PLL follows its ON bit (CR), the clock switch status follows SW (CFGR).
if request.IsInit:
    regs = {0x00: 0x83}
elif request.IsWrite:
    regs[request.Offset] = request.Value
elif request.IsRead:
    value = regs.get(request.Offset, 0)
    if request.Offset == 0x00:
        for on in (0, 16, 24, 26, 28):
            # the ready bits are read-only: what the BSP writes back there does not stick
            value &= ~(1 << (on + 1))
            if value & (1 << on):
                value |= 1 << (on + 1)
    elif request.Offset == 0x08:
        value = (value & ~0xC) | ((value & 0x3) << 2)
    request.Value = value
