/*
 * tinyprune board support: what STM32L4, STM32L4+ and STM32L5 share (RM0394, RM0432, RM0438):
 * the RCC at 0x40021000 (non-secure alias on L5), FLASH ACR latency, PWR voltage scaling and the
 * PLL from the 16 MHz HSI16.
 *
 * The PLL: HSI16 / M (M = 4, a 4 MHz VCO input, inside the 4-16 MHz window of all three) times N,
 * divided by R (2, 4, 6, 8: the smallest that puts the VCO at 64 MHz or more) to SYSCLK. AHB and
 * APB run undivided (all three families allow the core clock on their buses). The family file
 * defines before including this header:
 *   TP_L_GPIO_BASE        first GPIO port block (L4: 0x48000000, L5: 0x42020000)
 *   TP_L_WAIT_STATE_HZ    flash: one wait state per started step of this many Hz
 *   TP_L_VOS              PWR_CR1.VOS value for the clock (L4: 1 = range 1, L5: 0 = range 0)
 */
#ifndef TP_STM32L_H
#define TP_STM32L_H

#include <stdint.h>

#include "tp_cortexm.h"
#include "tp_stm32_periph.h"

#define TP_RCC_BASE        0x40021000u
#define TP_RCC_CR          TP_REG32(TP_RCC_BASE + 0x00u)
#define TP_RCC_CFGR        TP_REG32(TP_RCC_BASE + 0x08u)
#define TP_RCC_PLLCFGR     TP_REG32(TP_RCC_BASE + 0x0Cu)
#define TP_RCC_AHB2ENR     TP_REG32(TP_RCC_BASE + 0x4Cu)
#define TP_RCC_APB1ENR1    TP_REG32(TP_RCC_BASE + 0x58u)
#define TP_RCC_APB1ENR2    TP_REG32(TP_RCC_BASE + 0x5Cu)
#define TP_RCC_APB2ENR     TP_REG32(TP_RCC_BASE + 0x60u)

#define TP_RCC_CR_HSION        (1u << 8)
#define TP_RCC_CR_HSIRDY       (1u << 10)
#define TP_RCC_CR_PLLON        (1u << 24)
#define TP_RCC_CR_PLLRDY       (1u << 25)
#define TP_RCC_CFGR_SW_MASK    0x3u
#define TP_RCC_CFGR_SW_PLL     0x3u
#define TP_RCC_CFGR_SWS_MASK   (0x3u << 2)
#define TP_RCC_CFGR_SWS_PLL    (0x3u << 2)
#define TP_RCC_PLLCFGR_SRC_HSI 0x2u
#define TP_RCC_PLLCFGR_PLLREN  (1u << 24)
#define TP_RCC_APB1ENR1_PWREN  (1u << 28)

#define TP_FLASH_ACR           TP_REG32(0x40022000u)
#define TP_FLASH_ACR_LATENCY_MASK 0xFu

#define TP_PWR_BASE            0x40007000u
#define TP_PWR_CR1             TP_REG32(TP_PWR_BASE + 0x00u)
#define TP_PWR_CR2             TP_REG32(TP_PWR_BASE + 0x04u)
#define TP_PWR_SR2             TP_REG32(TP_PWR_BASE + 0x14u)
#define TP_PWR_CR1_VOS_SHIFT   9u
#define TP_PWR_CR1_VOS_MASK    (0x3u << TP_PWR_CR1_VOS_SHIFT)
#define TP_PWR_CR2_IOSV        (1u << 9)   /* VDDIO2 valid: port G pins 2-15 usable */
#define TP_PWR_SR2_VOSF        (1u << 10)  /* set while the regulator changes range */

#define TP_GPIO_PORT(port)     (TP_L_GPIO_BASE + 0x400u * (uint32_t)(port))
#define TP_GPIO_PORT_G         6u

#define TP_HSI16_HZ  16000000u
#define TP_PLL_M     4u
#define TP_PLL_IN_HZ (TP_HSI16_HZ / TP_PLL_M)
#define TP_PLL_R     ((TP_BOARD_CLOCK_HZ * 2u >= 64000000u) ? 2u \
                      : (TP_BOARD_CLOCK_HZ * 4u >= 64000000u) ? 4u \
                      : (TP_BOARD_CLOCK_HZ * 6u >= 64000000u) ? 6u : 8u)
#define TP_PLL_N     (TP_BOARD_CLOCK_HZ * TP_PLL_R / TP_PLL_IN_HZ)
#define TP_FLASH_WAIT_STATES ((TP_BOARD_CLOCK_HZ - 1u) / TP_L_WAIT_STATE_HZ)

#if (TP_BOARD_CLOCK_HZ * TP_PLL_R) % TP_PLL_IN_HZ != 0
#error "TP_BOARD_CLOCK_HZ times the PLL R divider must be a multiple of 4 MHz on STM32L4/L5"
#endif
#if TP_PLL_N < 8u || TP_PLL_N > 86u
#error "TP_BOARD_CLOCK_HZ is out of the STM32L4/L5 PLL's range"
#endif

/** Sets the regulator's voltage range and waits until it has settled. */
static inline void tp_stm32l_voltage_range(uint32_t vos)
{
    TP_RCC_APB1ENR1 |= TP_RCC_APB1ENR1_PWREN;
    (void)TP_RCC_APB1ENR1;
    TP_PWR_CR1 = (TP_PWR_CR1 & ~TP_PWR_CR1_VOS_MASK) | (vos << TP_PWR_CR1_VOS_SHIFT);
    while ((TP_PWR_SR2 & TP_PWR_SR2_VOSF) != 0u) {
    }
}

/** HSI16 on, the PLL's R output at TP_BOARD_CLOCK_HZ locked, flash latency set, SYSCLK switched. */
static inline void tp_stm32l_clock(uint32_t accel_bits)
{
    const uint32_t pll_n = TP_PLL_N;
    const uint32_t pll_r = TP_PLL_R;
    TP_RCC_CR |= TP_RCC_CR_HSION;
    while ((TP_RCC_CR & TP_RCC_CR_HSIRDY) == 0u) {
    }
    TP_RCC_PLLCFGR = TP_RCC_PLLCFGR_SRC_HSI | ((TP_PLL_M - 1u) << 4) | (pll_n << 8)
                     | TP_RCC_PLLCFGR_PLLREN | ((pll_r / 2u - 1u) << 25);
    TP_RCC_CR |= TP_RCC_CR_PLLON;
    while ((TP_RCC_CR & TP_RCC_CR_PLLRDY) == 0u) {
    }
    TP_FLASH_ACR = TP_FLASH_WAIT_STATES | accel_bits;
    while ((TP_FLASH_ACR & TP_FLASH_ACR_LATENCY_MASK) != TP_FLASH_WAIT_STATES) {
    }
    TP_RCC_CFGR = (TP_RCC_CFGR & ~TP_RCC_CFGR_SW_MASK) | TP_RCC_CFGR_SW_PLL;
    while ((TP_RCC_CFGR & TP_RCC_CFGR_SWS_MASK) != TP_RCC_CFGR_SWS_PLL) {
    }
}

/** Clocks the result UART and its pins' ports; TX and RX in their alternate functions. */
static inline void tp_stm32l_uart_pins(void)
{
#if TP_UART_BUS_APB2
    TP_RCC_APB2ENR |= 1u << TP_UART_ENABLE_BIT;
    (void)TP_RCC_APB2ENR;
#elif TP_UART_BUS_APB1_2
    TP_RCC_APB1ENR2 |= 1u << TP_UART_ENABLE_BIT;
    (void)TP_RCC_APB1ENR2;
#else
    TP_RCC_APB1ENR1 |= 1u << TP_UART_ENABLE_BIT;
    (void)TP_RCC_APB1ENR1;
#endif
    if (TP_UART_TX_PORT == TP_GPIO_PORT_G || TP_UART_RX_PORT == TP_GPIO_PORT_G) {
        TP_PWR_CR2 |= TP_PWR_CR2_IOSV; /* port G is on VDDIO2, isolated until declared valid */
    }
    TP_RCC_AHB2ENR |= (1u << TP_UART_TX_PORT) | (1u << TP_UART_RX_PORT);
    (void)TP_RCC_AHB2ENR;
    tp_stm32_gpio_af(TP_GPIO_PORT(TP_UART_TX_PORT), TP_UART_TX_PIN, TP_UART_AF);
    tp_stm32_gpio_af(TP_GPIO_PORT(TP_UART_RX_PORT), TP_UART_RX_PIN, TP_UART_RX_AF);
}

#endif /* TP_STM32L_H */
