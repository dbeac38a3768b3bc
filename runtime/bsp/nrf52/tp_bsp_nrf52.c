/*
 * tinyprune board support for nRF52 (nRF52840 product specification v1.7): the 64 MHz crystal
 * oscillator (HFXO) started so the UART baud rate is exact, the flash instruction cache on, the
 * result line on UART0 (the legacy UART: one byte per TXD write, no EasyDMA buffer in RAM) at the
 * board's pins, and the DWT cycle counter. The core always runs at 64 MHz.
 */
#include "tp_bsp.h"
#include "tp_cortexm.h"

#if TP_BOARD_CLOCK_HZ != 64000000u
#error "nRF52 cores run at 64 MHz: set clock_hz = 64_000_000 in the board file"
#endif

#define TP_CLOCK_BASE               0x40000000u
#define TP_CLOCK_TASKS_HFCLKSTART   TP_REG32(TP_CLOCK_BASE + 0x000u)
#define TP_CLOCK_EVENTS_HFCLKSTARTED TP_REG32(TP_CLOCK_BASE + 0x100u)
#define TP_NVMC_ICACHECNF           TP_REG32(0x4001E540u)
#define TP_NVMC_ICACHECNF_CACHEEN   (1u << 0)

#define TP_UART_TASKS_STARTTX TP_REG32(TP_UART_BASE + 0x008u)
#define TP_UART_EVENTS_TXDRDY TP_REG32(TP_UART_BASE + 0x11Cu)
#define TP_UART_ENABLE        TP_REG32(TP_UART_BASE + 0x500u)
#define TP_UART_PSEL_TXD      TP_REG32(TP_UART_BASE + 0x50Cu)
#define TP_UART_PSEL_RXD      TP_REG32(TP_UART_BASE + 0x514u)
#define TP_UART_TXD           TP_REG32(TP_UART_BASE + 0x51Cu)
#define TP_UART_BAUDRATE      TP_REG32(TP_UART_BASE + 0x524u)
#define TP_UART_CONFIG        TP_REG32(TP_UART_BASE + 0x56Cu)
#define TP_UART_ENABLE_UART   4u
/* PSEL: pin number in bits 4:0, port in bit 5 (P1.xx). */
#define TP_PSEL(port, pin)    (((uint32_t)(port) << 5) | (uint32_t)(pin))
/* BAUDRATE = baud * 2^32 / 16 MHz, rounded to a multiple of 4096 (115200 -> 0x01D7E000). */
#define TP_UART_BAUD_WORD \
    ((uint32_t)((((uint64_t)TP_UART_BAUD << 32) / 16000000u + 0x800u) & ~(uint64_t)0xFFFu))

void tp_bsp_init(void)
{
    TP_CLOCK_EVENTS_HFCLKSTARTED = 0u;
    TP_CLOCK_TASKS_HFCLKSTART = 1u;
    while (TP_CLOCK_EVENTS_HFCLKSTARTED == 0u) {
    }
    TP_NVMC_ICACHECNF |= TP_NVMC_ICACHECNF_CACHEEN;
    TP_UART_PSEL_TXD = TP_PSEL(TP_UART_TX_PORT, TP_UART_TX_PIN);
    TP_UART_PSEL_RXD = TP_PSEL(TP_UART_RX_PORT, TP_UART_RX_PIN);
    TP_UART_BAUDRATE = TP_UART_BAUD_WORD;
    TP_UART_CONFIG = 0u; /* 8N1, no flow control */
    TP_UART_ENABLE = TP_UART_ENABLE_UART;
    TP_UART_TASKS_STARTTX = 1u;
    tp_dwt_start();
}

void tp_bsp_putc(char c)
{
    TP_UART_EVENTS_TXDRDY = 0u;
    TP_UART_TXD = (uint8_t)c;
    while (TP_UART_EVENTS_TXDRDY == 0u) {
    }
}

uint32_t tp_bsp_cycles(void)
{
    return TP_DWT_CYCCNT;
}

void tp_bsp_idle(void)
{
    tp_idle_loop();
}
