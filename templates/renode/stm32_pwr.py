# STM32 PWR as the tinyprune BSP needs it: CR reads back; CSR reports the voltage scaling ready
# (bit 14) and, on the F7, over-drive ready bits that follow ODEN / ODSWEN of CR (bits 16, 17).
if request.IsInit:
    regs = {}
elif request.IsWrite:
    regs[request.Offset] = request.Value
elif request.IsRead:
    if request.Offset == 0x04:
        request.Value = (1 << 14) | (regs.get(0x00, 0) & (0x3 << 16))
    else:
        request.Value = regs.get(request.Offset, 0)
