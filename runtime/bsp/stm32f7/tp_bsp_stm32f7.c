/*
 * tinyprune board support for STM32F7 (RM0385): HSI -> PLL -> TP_BOARD_CLOCK_HZ with voltage
 * scale 1, over-drive above 180 MHz, flash wait states + ART accelerator, I/D caches, the result
 * USART (new-style register layout) and the DWT cycle counter.
 */
#include "tp_bsp.h"
#include "tp_stm32.h"
#include "tp_stm32_usart.h"

#define TP_PWR_CR1_ODEN       (1u << 16)
#define TP_PWR_CR1_ODSWEN     (1u << 17)
#define TP_PWR_CSR1_ODRDY     (1u << 16)
#define TP_PWR_CSR1_ODSWRDY   (1u << 17)
#define TP_PWR_CR1_VOS_SCALE1 (0x3u << 14)
#define TP_FLASH_ACR_ARTEN    (1u << 9)

#define TP_APB1_DIV TP_APB_DIV(54000000u)
#define TP_APB2_DIV TP_APB_DIV(108000000u)

static void tp_clock_init(void)
{
    TP_RCC_APB1ENR |= TP_RCC_APB1ENR_PWREN;
    (void)TP_RCC_APB1ENR;
    TP_PWR_CR = (TP_PWR_CR & ~TP_PWR_CR_VOS_MASK) | TP_PWR_CR1_VOS_SCALE1;
    tp_stm32_pll_start();
#if TP_BOARD_CLOCK_HZ > 180000000u
    TP_PWR_CR |= TP_PWR_CR1_ODEN;
    while ((TP_PWR_CSR & TP_PWR_CSR1_ODRDY) == 0u) {
    }
    TP_PWR_CR |= TP_PWR_CR1_ODSWEN;
    while ((TP_PWR_CSR & TP_PWR_CSR1_ODSWRDY) == 0u) {
    }
#endif
    tp_stm32_flash_latency(TP_FLASH_WAIT_STATES, TP_FLASH_ACR_PRFTEN | TP_FLASH_ACR_ARTEN);
    tp_stm32_switch_to_pll(TP_APB1_DIV, TP_APB2_DIV);
}

static void tp_uart_init(void)
{
    const uint32_t pclk = tp_stm32_uart_clock(TP_APB1_DIV, TP_APB2_DIV);
    tp_stm32_pin_af(TP_UART_TX_PORT, TP_UART_TX_PIN, TP_UART_AF);
    tp_stm32_pin_af(TP_UART_RX_PORT, TP_UART_RX_PIN, TP_UART_RX_AF);
    tp_stm32_usart_start(pclk);
}

void tp_bsp_init(void)
{
    tp_clock_init();
    tp_caches_enable();
    tp_uart_init();
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
