/*
 * tinyprune board support for STM32L5 (RM0438; Cortex-M33, TrustZone off as shipped): HSI16 ->
 * PLL -> TP_BOARD_CLOCK_HZ in voltage range 0, flash wait states, the instruction cache (ICACHE),
 * the result LPUART/U(S)ART on its ST-LINK pins (non-secure aliases), and the DWT cycle counter.
 */
#include "tp_bsp.h"

#define TP_L_GPIO_BASE     0x42020000u
#define TP_L_WAIT_STATE_HZ 20000000u /* range 0: one wait state per 20 MHz */
#define TP_L_VOS           0u

#include "tp_stm32l.h"
#include "tp_stm32_usart.h"

#define TP_ICACHE_CR     TP_REG32(0x40030400u)
#define TP_ICACHE_CR_EN  (1u << 0)

void tp_bsp_init(void)
{
    tp_stm32l_voltage_range(TP_L_VOS);
    tp_stm32l_clock(0u);
    TP_ICACHE_CR |= TP_ICACHE_CR_EN;
    tp_stm32l_uart_pins();
    tp_stm32_usart_start(TP_BOARD_CLOCK_HZ);
    tp_dwt_start();
}

void tp_bsp_putc(char c)
{
    tp_stm32_usart_putc(c);
}

uint32_t tp_bsp_cycles(void)
{
    return TP_DWT_CYCCNT;
}

void tp_bsp_idle(void)
{
    tp_idle_loop();
}
