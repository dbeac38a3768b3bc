/*
 * tinyprune board support for RP2040 (RP2040 datasheet, build 2021-03-05 onwards): the boot ROM's
 * second stage (XIP over plain 03h SPI reads, then the vector table at flash + 0x100), the 12 MHz
 * crystal (XOSC) -> PLL_SYS -> TP_BOARD_CLOCK_HZ for clk_sys and clk_peri, the result line on
 * UART0 (PL011) at GP0/GP1, and cycles from SysTick (Cortex-M0+ has no DWT), widened to 32 bits
 * with the microsecond TIMER so a layer longer than 2^24 cycles is still counted right.
 */
#include "tp_bsp.h"
#include "tp_cortexm.h"

#if TP_BOARD_CLOCK_HZ % 1000000u != 0u
#error "RP2040: clock_hz must be a whole number of MHz"
#endif

/*
 * Second stage boot loader: 252 bytes of position-independent code the boot ROM copies to SRAM,
 * checks against the CRC32 in the last 4 bytes (written by the build: tinyprune.firmware.boot2)
 * and runs. It sets the flash interface (SSI) to execute in place with the 03h read command at
 * clk_sys / 4, points VTOR at the vector table and enters the reset handler.
 */
__asm__(
    ".section .boot2, \"ax\", %progbits\n"
    ".syntax unified\n"
    ".thumb\n"
    ".global tp_boot2\n"
    ".type tp_boot2, %function\n"
    ".thumb_func\n"
    "tp_boot2:\n"
    "    ldr r3, =0x18000000\n"   /* XIP_SSI */
    "    movs r1, #0\n"
    "    str r1, [r3, #0x08]\n"   /* SSIENR: off while configuring */
    "    movs r1, #4\n"
    "    str r1, [r3, #0x14]\n"   /* BAUDR: SCK = clk_sys / 4 */
    "    ldr r1, =0x001F0300\n"   /* CTRLR0: 32-bit frames, EEPROM read mode, standard SPI */
    "    str r1, [r3, #0x00]\n"
    "    ldr r1, =0x03000218\n"   /* SPI_CTRLR0: XIP command 03h, 8-bit instruction, 24-bit address */
    "    ldr r0, =0x180000F4\n"
    "    str r1, [r0]\n"
    "    movs r1, #0\n"
    "    str r1, [r3, #0x04]\n"   /* CTRLR1: one data frame per transfer */
    "    movs r1, #1\n"
    "    str r1, [r3, #0x08]\n"   /* SSIENR: on */
    "    ldr r0, =0x10000100\n"   /* the vector table, after this stage */
    "    ldr r1, =0xE000ED08\n"   /* VTOR */
    "    str r0, [r1]\n"
    "    ldmia r0!, {r1, r2}\n"   /* initial SP, reset handler */
    "    msr msp, r1\n"
    "    bx r2\n"
    ".ltorg\n"
    ".org 252\n"
    ".word 0\n"                   /* CRC32, written by the build */
    ".previous\n");

#define TP_RESETS_RESET       TP_REG32(0x4000C000u)
#define TP_RESETS_RESET_DONE  TP_REG32(0x4000C008u)
#define TP_RESET_IO_BANK0     (1u << 5)
#define TP_RESET_PADS_BANK0   (1u << 8)
#define TP_RESET_PLL_SYS      (1u << 12)
#define TP_RESET_TIMER        (1u << 21)
#define TP_RESET_UART0        (1u << 22)

#define TP_XOSC_CTRL          TP_REG32(0x40024000u)
#define TP_XOSC_STATUS        TP_REG32(0x40024004u)
#define TP_XOSC_STARTUP       TP_REG32(0x4002400Cu)
#define TP_XOSC_CTRL_1_15MHZ  0xAA0u
#define TP_XOSC_CTRL_ENABLE   (0xFABu << 12)
#define TP_XOSC_STATUS_STABLE (1u << 31)
#define TP_XOSC_HZ            12000000u

#define TP_PLL_SYS_CS         TP_REG32(0x40028000u)
#define TP_PLL_SYS_PWR        TP_REG32(0x40028004u)
#define TP_PLL_SYS_FBDIV_INT  TP_REG32(0x40028008u)
#define TP_PLL_SYS_PRIM       TP_REG32(0x4002800Cu)
#define TP_PLL_CS_LOCK        (1u << 31)
#define TP_PLL_PWR_PD         (1u << 0)
#define TP_PLL_PWR_POSTDIVPD  (1u << 3)
#define TP_PLL_PWR_VCOPD      (1u << 5)

#define TP_CLOCKS_BASE        0x40008000u
#define TP_CLK_REF_CTRL       TP_REG32(TP_CLOCKS_BASE + 0x30u)
#define TP_CLK_REF_SELECTED   TP_REG32(TP_CLOCKS_BASE + 0x38u)
#define TP_CLK_SYS_CTRL       TP_REG32(TP_CLOCKS_BASE + 0x3Cu)
#define TP_CLK_SYS_DIV        TP_REG32(TP_CLOCKS_BASE + 0x40u)
#define TP_CLK_SYS_SELECTED   TP_REG32(TP_CLOCKS_BASE + 0x44u)
#define TP_CLK_PERI_CTRL      TP_REG32(TP_CLOCKS_BASE + 0x48u)
#define TP_CLK_REF_SRC_XOSC   0x2u
#define TP_CLK_SYS_SRC_AUX    0x1u  /* AUXSRC 0: pll_sys */
#define TP_CLK_PERI_ENABLE    (1u << 11)  /* AUXSRC 0: clk_sys */

#define TP_WATCHDOG_TICK      TP_REG32(0x4005802Cu)
#define TP_WATCHDOG_TICK_ENABLE (1u << 9)
#define TP_TIMER_TIMERAWL     TP_REG32(0x40054028u)

#define TP_IO_GPIO_CTRL(pin)  TP_REG32(0x40014004u + 8u * (uint32_t)(pin))
#define TP_IO_FUNC_UART       2u

#define TP_UART_DR            TP_REG32(TP_UART_BASE + 0x000u)
#define TP_UART_FR            TP_REG32(TP_UART_BASE + 0x018u)
#define TP_UART_IBRD          TP_REG32(TP_UART_BASE + 0x024u)
#define TP_UART_FBRD          TP_REG32(TP_UART_BASE + 0x028u)
#define TP_UART_LCR_H         TP_REG32(TP_UART_BASE + 0x02Cu)
#define TP_UART_CR            TP_REG32(TP_UART_BASE + 0x030u)
#define TP_UART_FR_TXFF       (1u << 5)
#define TP_UART_LCR_H_8N1_FIFO ((0x3u << 5) | (1u << 4))
#define TP_UART_CR_ON         ((1u << 0) | (1u << 8) | (1u << 9))  /* UARTEN, TXE, RXE */

#define TP_SYST_CSR           TP_REG32(0xE000E010u)
#define TP_SYST_RVR           TP_REG32(0xE000E014u)
#define TP_SYST_CVR           TP_REG32(0xE000E018u)
#define TP_SYST_CSR_ON        ((1u << 0) | (1u << 2))  /* ENABLE, CLKSOURCE = processor clock */

/* PLL: 12 MHz reference, REFDIV 1, VCO = FBDIV * 12 MHz in 750-1600 MHz, two post dividers. */
#define TP_PLL_POSTDIV1 6u
#define TP_PLL_POSTDIV2 2u
#define TP_PLL_FBDIV    (TP_BOARD_CLOCK_HZ / 1000000u * TP_PLL_POSTDIV1 * TP_PLL_POSTDIV2 / 12u)
#if TP_PLL_FBDIV * 12u < 750u || TP_PLL_FBDIV * 12u > 1600u
#error "RP2040: clock_hz is out of the PLL's range with post dividers 6 x 2 (63-133 MHz)"
#endif

static void tp_unreset(uint32_t bits)
{
    TP_RESETS_RESET &= ~bits;
    while ((TP_RESETS_RESET_DONE & bits) != bits) {
    }
}

static void tp_clock_init(void)
{
    TP_XOSC_CTRL = TP_XOSC_CTRL_1_15MHZ;
    TP_XOSC_STARTUP = (TP_XOSC_HZ / 1000u + 128u) / 256u; /* about 1 ms */
    TP_XOSC_CTRL = TP_XOSC_CTRL_1_15MHZ | TP_XOSC_CTRL_ENABLE;
    while ((TP_XOSC_STATUS & TP_XOSC_STATUS_STABLE) == 0u) {
    }
    TP_CLK_REF_CTRL = TP_CLK_REF_SRC_XOSC;
    while ((TP_CLK_REF_SELECTED & (1u << TP_CLK_REF_SRC_XOSC)) == 0u) {
    }
    TP_CLK_SYS_CTRL = 0u; /* glitchless switch to clk_ref while the PLL is reprogrammed */
    while ((TP_CLK_SYS_SELECTED & 1u) == 0u) {
    }
    TP_RESETS_RESET |= TP_RESET_PLL_SYS;
    tp_unreset(TP_RESET_PLL_SYS);
    TP_PLL_SYS_CS = 1u; /* REFDIV */
    TP_PLL_SYS_FBDIV_INT = TP_PLL_FBDIV;
    TP_PLL_SYS_PWR &= ~(TP_PLL_PWR_PD | TP_PLL_PWR_VCOPD);
    while ((TP_PLL_SYS_CS & TP_PLL_CS_LOCK) == 0u) {
    }
    TP_PLL_SYS_PRIM = (TP_PLL_POSTDIV1 << 16) | (TP_PLL_POSTDIV2 << 12);
    TP_PLL_SYS_PWR &= ~TP_PLL_PWR_POSTDIVPD;
    TP_CLK_SYS_DIV = 1u << 8;
    TP_CLK_SYS_CTRL = TP_CLK_SYS_SRC_AUX;
    while ((TP_CLK_SYS_SELECTED & 2u) == 0u) {
    }
    TP_CLK_PERI_CTRL = TP_CLK_PERI_ENABLE;
    TP_WATCHDOG_TICK = TP_WATCHDOG_TICK_ENABLE | (TP_XOSC_HZ / 1000000u); /* 1 us TIMER ticks */
}

static void tp_uart_init(void)
{
    tp_unreset(TP_RESET_IO_BANK0 | TP_RESET_PADS_BANK0 | TP_RESET_UART0 | TP_RESET_TIMER);
    /* Divider in 1/64 steps: 8 * clk_peri / baud = (IBRD << 7) + 2 * FBRD - 1, rounded. */
    const uint32_t div = 8u * TP_BOARD_CLOCK_HZ / TP_UART_BAUD;
    TP_UART_IBRD = div >> 7;
    TP_UART_FBRD = ((div & 0x7Fu) + 1u) / 2u;
    TP_UART_LCR_H = TP_UART_LCR_H_8N1_FIFO; /* writing LCR_H latches the divider */
    TP_UART_CR = TP_UART_CR_ON;
    TP_IO_GPIO_CTRL(TP_UART_TX_PIN) = TP_IO_FUNC_UART;
    TP_IO_GPIO_CTRL(TP_UART_RX_PIN) = TP_IO_FUNC_UART;
}

static uint32_t tp_last_systick;
static uint32_t tp_last_us;
static uint32_t tp_cycles;

void tp_bsp_init(void)
{
    tp_clock_init();
    tp_uart_init();
    TP_SYST_RVR = 0xFFFFFFu;
    TP_SYST_CVR = 0u;
    TP_SYST_CSR = TP_SYST_CSR_ON;
    tp_last_systick = TP_SYST_CVR;
    tp_last_us = TP_TIMER_TIMERAWL;
    tp_cycles = 0u;
}

void tp_bsp_putc(char c)
{
    while ((TP_UART_FR & TP_UART_FR_TXFF) != 0u) {
    }
    TP_UART_DR = (uint8_t)c;
}

uint32_t tp_bsp_cycles(void)
{
    /* SysTick counts down over 24 bits; the TIMER's microseconds say how many times it wrapped. */
    const uint32_t now = TP_SYST_CVR;
    const uint32_t us = TP_TIMER_TIMERAWL;
    const uint32_t delta = (tp_last_systick - now) & 0xFFFFFFu;
    const uint32_t approx = (us - tp_last_us) * (TP_BOARD_CLOCK_HZ / 1000000u);
    const uint32_t wraps = approx > delta ? (approx - delta + 0x800000u) >> 24 : 0u;
    tp_cycles += delta + (wraps << 24);
    tp_last_systick = now;
    tp_last_us = us;
    return tp_cycles;
}

void tp_bsp_idle(void)
{
    tp_idle_loop();
}
