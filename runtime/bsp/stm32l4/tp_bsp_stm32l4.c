/*
 * tinyprune board support for STM32L4 and STM32L4+ (RM0394, RM0432): HSI16 -> PLL ->
 * TP_BOARD_CLOCK_HZ in voltage range 1 (range 1 boost mode above 80 MHz, L4+ only), flash wait
 * states with prefetch and the ART instruction/data caches, the result U(S)ART or LPUART on its
 * ST-LINK pins, and the DWT cycle counter.
 */
#include "tp_bsp.h"

#define TP_L_GPIO_BASE     0x48000000u
#if TP_BOARD_CLOCK_HZ > 80000000u
#define TP_L_WAIT_STATE_HZ 20000000u /* L4+ range 1 boost: one wait state per 20 MHz */
#define TP_L_BOOST         1
#else
#define TP_L_WAIT_STATE_HZ 16000000u /* range 1: one wait state per 16 MHz */
#define TP_L_BOOST         0
#endif
#define TP_L_VOS           1u

#include "tp_stm32l.h"
#include "tp_stm32_usart.h"

#define TP_PWR_CR5         TP_REG32(TP_PWR_BASE + 0x80u)
#define TP_PWR_CR5_R1MODE  (1u << 8) /* 1: range 1 normal, 0: boost (L4+, above 80 MHz) */
#define TP_FLASH_ACR_PRFTEN (1u << 8)
#define TP_FLASH_ACR_ICEN  (1u << 9)
#define TP_FLASH_ACR_DCEN  (1u << 10)

void tp_bsp_init(void)
{
    tp_stm32l_voltage_range(TP_L_VOS);
#if TP_L_BOOST
    TP_PWR_CR5 &= ~TP_PWR_CR5_R1MODE;
#endif
    tp_stm32l_clock(TP_FLASH_ACR_PRFTEN | TP_FLASH_ACR_ICEN | TP_FLASH_ACR_DCEN);
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
