/*
 * tinyprune board support for STM32F4 (RM0368 for the F401): HSI -> PLL -> TP_BOARD_CLOCK_HZ,
 * voltage scale for the clock, flash wait states + prefetch + I/D caches of the flash interface,
 * the result USART (old-style register layout) and the DWT cycle counter.
 */
#include "tp_bsp.h"
#include "tp_stm32.h"

#define TP_FLASH_ACR_ICEN   (1u << 9)
#define TP_FLASH_ACR_DCEN   (1u << 10)
#define TP_PWR_CR_VOS_SCALE (TP_BOARD_CLOCK_HZ > 84000000u ? (0x3u << 14) : (0x2u << 14))

#define TP_APB1_DIV TP_APB_DIV(42000000u)
#define TP_APB2_DIV TP_APB_DIV(84000000u)

#define TP_USART_SR   TP_REG32(TP_UART_BASE + 0x00u)
#define TP_USART_DR   TP_REG32(TP_UART_BASE + 0x04u)
#define TP_USART_BRR  TP_REG32(TP_UART_BASE + 0x08u)
#define TP_USART_CR1  TP_REG32(TP_UART_BASE + 0x0Cu)
#define TP_USART_CR1_UE (1u << 13)
#define TP_USART_CR1_TE (1u << 3)
#define TP_USART_SR_TXE (1u << 7)

static void tp_clock_init(void)
{
    TP_RCC_APB1ENR |= TP_RCC_APB1ENR_PWREN;
    (void)TP_RCC_APB1ENR;
    TP_PWR_CR = (TP_PWR_CR & ~TP_PWR_CR_VOS_MASK) | TP_PWR_CR_VOS_SCALE;
    tp_stm32_pll_start();
    tp_stm32_flash_latency(TP_FLASH_WAIT_STATES,
                           TP_FLASH_ACR_PRFTEN | TP_FLASH_ACR_ICEN | TP_FLASH_ACR_DCEN);
    tp_stm32_switch_to_pll(TP_APB1_DIV, TP_APB2_DIV);
}

static void tp_uart_init(void)
{
    const uint32_t pclk = tp_stm32_uart_clock(TP_APB1_DIV, TP_APB2_DIV);
    tp_stm32_pin_af(TP_UART_TX_PORT, TP_UART_TX_PIN, TP_UART_AF);
    tp_stm32_pin_af(TP_UART_RX_PORT, TP_UART_RX_PIN, TP_UART_RX_AF);
    TP_USART_CR1 = 0u;
    TP_USART_BRR = (pclk + TP_UART_BAUD / 2u) / TP_UART_BAUD;
    TP_USART_CR1 = TP_USART_CR1_UE | TP_USART_CR1_TE;
}

void tp_bsp_init(void)
{
    tp_clock_init();
    tp_uart_init();
    tp_dwt_start();
}

void tp_bsp_putc(char c)
{
    while ((TP_USART_SR & TP_USART_SR_TXE) == 0u) {
    }
    TP_USART_DR = (uint8_t)c;
}

uint32_t tp_bsp_cycles(void)
{
    return TP_DWT_CYCCNT;
}

void tp_bsp_idle(void)
{
    tp_idle_loop();
}
