/*
 * tinyprune board support: the four calls the firmware harness needs, one implementation per MCU
 * family in runtime/bsp/<family>/, chosen by the board file. No HAL, no interrupts, no allocation.
 *
 * The build passes the board as -D macros (see tinyprune/firmware/build.py):
 *   TP_BOARD_NAME ("nucleo_f746"), TP_BOARD_CLOCK_HZ, TP_CORE_CORTEX_M4 / TP_CORE_CORTEX_M7,
 *   TP_HAS_FPU, TP_USE_DSP, TP_UART_BASE, TP_UART_BAUD and, on STM32, TP_UART_BUS_APB2,
 *   TP_UART_ENABLE_BIT, TP_UART_TX_PORT/PIN, TP_UART_RX_PORT/PIN, TP_UART_AF.
 */
#ifndef TP_BSP_H
#define TP_BSP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Clocks to TP_BOARD_CLOCK_HZ, caches (Cortex-M7), result UART, DWT cycle counter running. */
void tp_bsp_init(void);

/** Sends one byte on the result UART (blocking). */
void tp_bsp_putc(char c);

/** Core cycles since tp_bsp_init() (DWT CYCCNT, wraps at 2^32). */
uint32_t tp_bsp_cycles(void);

/** Parks the core for good (a `b .` loop the emulators recognise as idle). */
void tp_bsp_idle(void) __attribute__((noreturn));

/* Tiny writers over tp_bsp_putc (runtime/bsp/tp_print.c): no printf, to keep flash small. */

/** Writes a NUL-terminated string. */
void tp_print_str(const char *s);

/** Writes an unsigned decimal number. */
void tp_print_u32(uint32_t value);

/** Writes a signed decimal number. */
void tp_print_i32(int32_t value);

/** Writes `0x` and 8 lowercase hex digits. */
void tp_print_hex32(uint32_t value);

/** Writes `len` bytes as lowercase hex, two digits per byte, no separator. */
void tp_print_hex_bytes(const uint8_t *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* TP_BSP_H */
