/*
 * tinyprune board support: the STM32 GPIO port block, the same on every family (RM0090, RM0385,
 * RM0394, RM0433, RM0438: MODER, OSPEEDR, AFRL/AFRH). Where each port block sits and how its clock
 * is enabled differs per family: the caller does that.
 */
#ifndef TP_STM32_PERIPH_H
#define TP_STM32_PERIPH_H

#include <stdint.h>

#include "tp_cortexm.h"

#define TP_GPIO_MODER_OF(gpio)   TP_REG32((gpio) + 0x00u)
#define TP_GPIO_OSPEEDR_OF(gpio) TP_REG32((gpio) + 0x08u)
#define TP_GPIO_AFR_OF(gpio, pin) TP_REG32((gpio) + 0x20u + 4u * ((uint32_t)(pin) / 8u))

/** Puts pin `pin` of the port block at `gpio` in alternate-function mode `af`, high speed. */
static inline void tp_stm32_gpio_af(uint32_t gpio, uint32_t pin, uint32_t af)
{
    const uint32_t shift2 = 2u * pin;
    const uint32_t shift4 = 4u * (pin % 8u);
    TP_GPIO_MODER_OF(gpio) = (TP_GPIO_MODER_OF(gpio) & ~(0x3u << shift2)) | (0x2u << shift2);
    TP_GPIO_OSPEEDR_OF(gpio) |= 0x3u << shift2;
    TP_GPIO_AFR_OF(gpio, pin) = (TP_GPIO_AFR_OF(gpio, pin) & ~(0xFu << shift4)) | (af << shift4);
}

#endif /* TP_STM32_PERIPH_H */
