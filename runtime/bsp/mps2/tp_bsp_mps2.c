/*
 * tinyprune board support for Arm MPS2 FPGA images (AN386 Cortex-M4, AN500 Cortex-M7) as
 * emulated by QEMU: fixed 25 MHz clock, CMSDK UART0 for the result lines, DWT cycle counter
 * (QEMU does not implement the DWT: CYCCNT reads 0 there; the unicorn backend serves it).
 */
#include "tp_bsp.h"
#include "tp_cortexm.h"

#define TP_UART_DATA     TP_REG32(TP_UART_BASE + 0x00u)
#define TP_UART_STATE    TP_REG32(TP_UART_BASE + 0x04u)
#define TP_UART_CTRL     TP_REG32(TP_UART_BASE + 0x08u)
#define TP_UART_BAUDDIV  TP_REG32(TP_UART_BASE + 0x10u)
#define TP_UART_STATE_TXFULL (1u << 0)
#define TP_UART_CTRL_TXEN    (1u << 0)

void tp_bsp_init(void)
{
    tp_caches_enable();
    TP_UART_BAUDDIV = TP_BOARD_CLOCK_HZ / TP_UART_BAUD; /* the CMSDK UART needs >= 16 */
    TP_UART_CTRL = TP_UART_CTRL_TXEN;
    tp_dwt_start();
}

void tp_bsp_putc(char c)
{
    while ((TP_UART_STATE & TP_UART_STATE_TXFULL) != 0u) {
    }
    TP_UART_DATA = (uint8_t)c;
}

uint32_t tp_bsp_cycles(void)
{
    return TP_DWT_CYCCNT;
}

void tp_bsp_idle(void)
{
    tp_idle_loop();
}
