/*
 * tinyprune board support: what STM32F4 and STM32F7 share (RCC, GPIO, FLASH ACR layouts and the
 * PLL arithmetic). Register offsets from RM0090/RM0368 (F4) and RM0385 (F7).
 *
 * The PLL runs from the 16 MHz HSI: /8 gives a 2 MHz VCO input, N = f_vco / 2 MHz, P divides the
 * VCO down to TP_BOARD_CLOCK_HZ, Q = 48 MHz (or the nearest below) for USB.
 */
#ifndef TP_STM32_H
#define TP_STM32_H

#include <stdint.h>

#include "tp_cortexm.h"
#include "tp_stm32_periph.h"

#define TP_RCC_BASE       0x40023800u
#define TP_RCC_CR         TP_REG32(TP_RCC_BASE + 0x00u)
#define TP_RCC_PLLCFGR    TP_REG32(TP_RCC_BASE + 0x04u)
#define TP_RCC_CFGR       TP_REG32(TP_RCC_BASE + 0x08u)
#define TP_RCC_AHB1ENR    TP_REG32(TP_RCC_BASE + 0x30u)
#define TP_RCC_APB1ENR    TP_REG32(TP_RCC_BASE + 0x40u)
#define TP_RCC_APB2ENR    TP_REG32(TP_RCC_BASE + 0x44u)

#define TP_RCC_CR_HSION       (1u << 0)
#define TP_RCC_CR_HSIRDY      (1u << 1)
#define TP_RCC_CR_PLLON       (1u << 24)
#define TP_RCC_CR_PLLRDY      (1u << 25)
#define TP_RCC_CFGR_SW_MASK   0x3u
#define TP_RCC_CFGR_SW_PLL    0x2u
#define TP_RCC_CFGR_SWS_MASK  (0x3u << 2)
#define TP_RCC_CFGR_SWS_PLL   (0x2u << 2)
#define TP_RCC_APB1ENR_PWREN  (1u << 28)

#define TP_FLASH_ACR          TP_REG32(0x40023C00u)
#define TP_FLASH_ACR_LATENCY_MASK 0xFu
#define TP_FLASH_ACR_PRFTEN   (1u << 8)

#define TP_PWR_BASE           0x40007000u
#define TP_PWR_CR             TP_REG32(TP_PWR_BASE + 0x00u)
#define TP_PWR_CSR            TP_REG32(TP_PWR_BASE + 0x04u)
#define TP_PWR_CR_VOS_MASK    (0x3u << 14)

#define TP_GPIO_BASE(port)    (0x40020000u + 0x400u * (uint32_t)(port))

#define TP_HSI_HZ   16000000u
#define TP_PLL_M    8u
#define TP_PLL_VCO_IN_HZ (TP_HSI_HZ / TP_PLL_M)
/** Smallest P divider (2, 4, 6, 8) that puts the VCO at 192 MHz or more. */
#define TP_PLL_P    ((TP_BOARD_CLOCK_HZ * 2u >= 192000000u) ? 2u \
                     : (TP_BOARD_CLOCK_HZ * 4u >= 192000000u) ? 4u \
                     : (TP_BOARD_CLOCK_HZ * 6u >= 192000000u) ? 6u : 8u)
#define TP_PLL_N    (TP_BOARD_CLOCK_HZ * TP_PLL_P / TP_PLL_VCO_IN_HZ)
#define TP_PLL_Q    ((TP_BOARD_CLOCK_HZ * TP_PLL_P + 47999999u) / 48000000u)

#if (TP_BOARD_CLOCK_HZ % TP_PLL_VCO_IN_HZ) != 0
#error "TP_BOARD_CLOCK_HZ must be a multiple of 2 MHz on STM32"
#endif

/** Smallest APB prescaler (1, 2, 4, 8, 16) that keeps the bus at or below max_hz. */
#define TP_APB_DIV(max_hz) \
    ((TP_BOARD_CLOCK_HZ <= (max_hz)) ? 1u : (TP_BOARD_CLOCK_HZ <= 2u * (max_hz)) ? 2u \
     : (TP_BOARD_CLOCK_HZ <= 4u * (max_hz)) ? 4u : (TP_BOARD_CLOCK_HZ <= 8u * (max_hz)) ? 8u : 16u)
/** CFGR PPREx field value for a prescaler. */
#define TP_PPRE_BITS(div) \
    ((div) == 1u ? 0u : (div) == 2u ? 4u : (div) == 4u ? 5u : (div) == 8u ? 6u : 7u)

/** Flash wait states at 2.7-3.6 V: one per started 30 MHz. */
#define TP_FLASH_WAIT_STATES ((TP_BOARD_CLOCK_HZ - 1u) / 30000000u)

#if TP_PLL_N > 432u
#error "TP_BOARD_CLOCK_HZ is too high for the STM32 PLL"
#endif

/** Starts the main PLL from HSI (M = 8, N, P, Q as computed above) and waits for lock. */
static inline void tp_stm32_pll_start(void)
{
    const uint32_t pll_n = TP_PLL_N;
    const uint32_t pll_p = TP_PLL_P;
    const uint32_t pll_q = TP_PLL_Q;
    TP_RCC_CR |= TP_RCC_CR_HSION;
    while ((TP_RCC_CR & TP_RCC_CR_HSIRDY) == 0u) {
    }
    TP_RCC_PLLCFGR = TP_PLL_M | (pll_n << 6) | ((pll_p / 2u - 1u) << 16) | (pll_q << 24);
    TP_RCC_CR |= TP_RCC_CR_PLLON;
    while ((TP_RCC_CR & TP_RCC_CR_PLLRDY) == 0u) {
    }
}

/** Sets the bus prescalers and switches SYSCLK to the PLL. */
static inline void tp_stm32_switch_to_pll(uint32_t apb1_div, uint32_t apb2_div)
{
    TP_RCC_CFGR = (TP_PPRE_BITS(apb1_div) << 10) | (TP_PPRE_BITS(apb2_div) << 13);
    TP_RCC_CFGR = (TP_RCC_CFGR & ~TP_RCC_CFGR_SW_MASK) | TP_RCC_CFGR_SW_PLL;
    while ((TP_RCC_CFGR & TP_RCC_CFGR_SWS_MASK) != TP_RCC_CFGR_SWS_PLL) {
    }
}

/** Sets the flash latency (plus the given accelerator bits) and waits until it reads back. */
static inline void tp_stm32_flash_latency(uint32_t wait_states, uint32_t accel_bits)
{
    TP_FLASH_ACR = wait_states | accel_bits;
    while ((TP_FLASH_ACR & TP_FLASH_ACR_LATENCY_MASK) != wait_states) {
    }
}

/** Clocks GPIO port `port` and puts a pin in alternate-function mode `af`, high speed. */
static inline void tp_stm32_pin_af(uint32_t port, uint32_t pin, uint32_t af)
{
    TP_RCC_AHB1ENR |= 1u << port;
    (void)TP_RCC_AHB1ENR; /* the enable takes effect after a read-back */
    tp_stm32_gpio_af(TP_GPIO_BASE(port), pin, af);
}

/** Enables the clock of the result UART; returns its bus clock in Hz. */
static inline uint32_t tp_stm32_uart_clock(uint32_t apb1_div, uint32_t apb2_div)
{
#if TP_UART_BUS_APB2
    (void)apb1_div;
    TP_RCC_APB2ENR |= 1u << TP_UART_ENABLE_BIT;
    (void)TP_RCC_APB2ENR;
    return TP_BOARD_CLOCK_HZ / apb2_div;
#else
    (void)apb2_div;
    TP_RCC_APB1ENR |= 1u << TP_UART_ENABLE_BIT;
    (void)TP_RCC_APB1ENR;
    return TP_BOARD_CLOCK_HZ / apb1_div;
#endif
}

#endif /* TP_STM32_H */
