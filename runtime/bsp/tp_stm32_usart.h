/*
 * tinyprune board support: the "new" STM32 U(S)ART/LPUART register layout of F7, H7, L4 and L5
 * (RM0385, RM0433, RM0394, RM0438: CR1, BRR, ISR, TDR). The F4's older layout (SR, DR) is in its BSP.
 */
#ifndef TP_STM32_USART_H
#define TP_STM32_USART_H

#include <stdint.h>

#include "tp_cortexm.h"

#define TP_USART_CR1  TP_REG32(TP_UART_BASE + 0x00u)
#define TP_USART_BRR  TP_REG32(TP_UART_BASE + 0x0Cu)
#define TP_USART_ISR  TP_REG32(TP_UART_BASE + 0x1Cu)
#define TP_USART_TDR  TP_REG32(TP_UART_BASE + 0x28u)
#define TP_USART_CR1_UE  (1u << 0)
#define TP_USART_CR1_TE  (1u << 3)
#define TP_USART_ISR_TXE (1u << 7)

/** Baud-rate register value for the UART clock `clock_hz`: rounded, 256x for an LPUART. */
static inline uint32_t tp_stm32_usart_brr(uint32_t clock_hz)
{
#if defined(TP_UART_LPUART) && TP_UART_LPUART
    return (uint32_t)((256ull * clock_hz + TP_UART_BAUD / 2u) / TP_UART_BAUD);
#else
    return (clock_hz + TP_UART_BAUD / 2u) / TP_UART_BAUD;
#endif
}

/** Transmitter on at TP_UART_BAUD (8N1) from a UART clock of `clock_hz`. */
static inline void tp_stm32_usart_start(uint32_t clock_hz)
{
    TP_USART_CR1 = 0u;
    TP_USART_BRR = tp_stm32_usart_brr(clock_hz);
    TP_USART_CR1 = TP_USART_CR1_UE | TP_USART_CR1_TE;
}

/** Sends one byte once the transmit register is empty. */
static inline void tp_stm32_usart_putc(char c)
{
    while ((TP_USART_ISR & TP_USART_ISR_TXE) == 0u) {
    }
    TP_USART_TDR = (uint8_t)c;
}

#endif /* TP_STM32_USART_H */
