/*
 * tinyprune board support: Armv7-M core registers shared by every family (SCB, caches, DWT).
 * Addresses from the Armv7-M Architecture Reference Manual.
 */
#ifndef TP_CORTEXM_H
#define TP_CORTEXM_H

#include <stdint.h>

#define TP_REG32(addr) (*(volatile uint32_t *)(addr))

#define TP_SCB_CCR       TP_REG32(0xE000ED14u)  /* configuration and control */
#define TP_SCB_CCSIDR    TP_REG32(0xE000ED80u)  /* cache size id (selected by CSSELR) */
#define TP_SCB_CSSELR    TP_REG32(0xE000ED84u)  /* cache size selection */
#define TP_SCB_ICIALLU   TP_REG32(0xE000EF50u)  /* invalidate all I-cache to PoU */
#define TP_SCB_DCISW     TP_REG32(0xE000EF60u)  /* invalidate D-cache by set/way */
#define TP_DEMCR         TP_REG32(0xE000EDFCu)  /* debug exception and monitor control */
#define TP_DWT_CTRL      TP_REG32(0xE0001000u)
#define TP_DWT_CYCCNT    TP_REG32(0xE0001004u)
#define TP_DWT_LAR       TP_REG32(0xE0001FB0u)  /* lock access (locked after reset on STM32F7) */

#define TP_SCB_CCR_DC        (1u << 16)
#define TP_SCB_CCR_IC        (1u << 17)
#define TP_DEMCR_TRCENA      (1u << 24)
#define TP_DWT_CTRL_CYCCNTENA (1u << 0)
#define TP_DWT_LAR_KEY       0xC5ACCE55u

static inline void tp_dsb_isb(void)
{
    __asm volatile("dsb 0xF\n\tisb 0xF" ::: "memory");
}

/** Unlocks the DWT, enables trace and starts CYCCNT from 0. */
static inline void tp_dwt_start(void)
{
    TP_DWT_LAR = TP_DWT_LAR_KEY;
    TP_DEMCR |= TP_DEMCR_TRCENA;
    TP_DWT_CYCCNT = 0u;
    TP_DWT_CTRL |= TP_DWT_CTRL_CYCCNTENA;
}

/** Invalidates and enables the Cortex-M7 instruction and data caches (no-op on other cores). */
static inline void tp_caches_enable(void)
{
#if defined(TP_CORE_CORTEX_M7) && TP_CORE_CORTEX_M7
    tp_dsb_isb();
    TP_SCB_ICIALLU = 0u;
    tp_dsb_isb();
    TP_SCB_CCR |= TP_SCB_CCR_IC;
    tp_dsb_isb();

    TP_SCB_CSSELR = 0u; /* level 1 data cache */
    tp_dsb_isb();
    const uint32_t ccsidr = TP_SCB_CCSIDR;
    const uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u;
    const uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
    const uint32_t line_shift = (ccsidr & 0x7u) + 4u;
    const uint32_t way_shift = ways > 1u ? (uint32_t)__builtin_clz(ways - 1u) : 0u;
    for (uint32_t set = 0u; set < sets; ++set) {
        for (uint32_t way = 0u; way < ways; ++way) {
            TP_SCB_DCISW = (set << line_shift) | (way << way_shift);
        }
    }
    tp_dsb_isb();
    TP_SCB_CCR |= TP_SCB_CCR_DC;
    tp_dsb_isb();
#endif
}

/** Parks the core: a single branch to itself. */
static inline void tp_idle_loop(void) __attribute__((noreturn));
static inline void tp_idle_loop(void)
{
    for (;;) {
        __asm volatile("b ." ::: "memory");
    }
}

#endif /* TP_CORTEXM_H */
