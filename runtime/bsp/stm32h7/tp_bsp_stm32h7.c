/*
 * tinyprune board support for STM32H742/743/753/750 (RM0433): LDO supply, voltage scale 1 and,
 * above 400 MHz, scale 0 (over-drive through SYSCFG); HSI (64 MHz) -> PLL1 (P output) ->
 * TP_BOARD_CLOCK_HZ; AXI/AHB at most 240 MHz and every APB at most 120 MHz; flash latency and
 * programming delay for the AXI clock; I/D caches, the result USART and the DWT cycle counter.
 */
#include "tp_bsp.h"
#include "tp_stm32_periph.h"
#include "tp_stm32_usart.h"

#define TP_RCC_BASE         0x58024400u
#define TP_RCC_CR           TP_REG32(TP_RCC_BASE + 0x000u)
#define TP_RCC_CFGR         TP_REG32(TP_RCC_BASE + 0x010u)
#define TP_RCC_D1CFGR       TP_REG32(TP_RCC_BASE + 0x018u)
#define TP_RCC_D2CFGR       TP_REG32(TP_RCC_BASE + 0x01Cu)
#define TP_RCC_D3CFGR       TP_REG32(TP_RCC_BASE + 0x020u)
#define TP_RCC_PLLCKSELR    TP_REG32(TP_RCC_BASE + 0x028u)
#define TP_RCC_PLLCFGR      TP_REG32(TP_RCC_BASE + 0x02Cu)
#define TP_RCC_PLL1DIVR     TP_REG32(TP_RCC_BASE + 0x030u)
#define TP_RCC_AHB4ENR      TP_REG32(TP_RCC_BASE + 0x0E0u)
#define TP_RCC_APB1LENR     TP_REG32(TP_RCC_BASE + 0x0E8u)
#define TP_RCC_APB2ENR      TP_REG32(TP_RCC_BASE + 0x0F0u)
#define TP_RCC_APB4ENR      TP_REG32(TP_RCC_BASE + 0x0F4u)

#define TP_RCC_CR_HSION       (1u << 0)
#define TP_RCC_CR_HSIRDY      (1u << 2)
#define TP_RCC_CR_PLL1ON      (1u << 24)
#define TP_RCC_CR_PLL1RDY     (1u << 25)
#define TP_RCC_CFGR_SW_MASK   0x7u
#define TP_RCC_CFGR_SW_PLL1   0x3u
#define TP_RCC_CFGR_SWS_MASK  (0x7u << 3)
#define TP_RCC_CFGR_SWS_PLL1  (0x3u << 3)
#define TP_RCC_PLLCFGR_PLL1RGE_8_16 (0x3u << 2)
#define TP_RCC_PLLCFGR_DIVP1EN (1u << 16)
#define TP_RCC_APB4ENR_SYSCFGEN (1u << 1)

#define TP_PWR_BASE         0x58024800u
#define TP_PWR_CSR1         TP_REG32(TP_PWR_BASE + 0x04u)
#define TP_PWR_CR3          TP_REG32(TP_PWR_BASE + 0x0Cu)
#define TP_PWR_D3CR         TP_REG32(TP_PWR_BASE + 0x18u)
#define TP_PWR_CR3_BYPASS   (1u << 0)
#define TP_PWR_CR3_LDOEN    (1u << 1)
#define TP_PWR_CR3_SCUEN    (1u << 2)
#define TP_PWR_CSR1_ACTVOSRDY (1u << 13)
#define TP_PWR_D3CR_VOS_MASK (0x3u << 14)
#define TP_PWR_D3CR_VOS1    (0x3u << 14)
#define TP_PWR_D3CR_VOSRDY  (1u << 13)
#define TP_SYSCFG_PWRCR     TP_REG32(0x58000400u + 0x2Cu)
#define TP_SYSCFG_PWRCR_ODEN (1u << 0)

#define TP_FLASH_ACR        TP_REG32(0x52002000u)
#define TP_FLASH_ACR_LATENCY_MASK 0xFu

#define TP_GPIO_PORT(port)  (0x58020000u + 0x400u * (uint32_t)(port))

/* HSI 64 MHz / M = 16 MHz into PLL1 (range 8-16 MHz, wide VCO 192-960 MHz), N, P = 2 (or 4...). */
#define TP_HSI_HZ    64000000u
#define TP_PLL_M     4u
#define TP_PLL_IN_HZ (TP_HSI_HZ / TP_PLL_M)
#define TP_PLL_P     ((TP_BOARD_CLOCK_HZ * 2u >= 192000000u) ? 2u \
                      : (TP_BOARD_CLOCK_HZ * 4u >= 192000000u) ? 4u : 8u)
#define TP_PLL_N     (TP_BOARD_CLOCK_HZ * TP_PLL_P / TP_PLL_IN_HZ)
#define TP_HCLK_DIV  (TP_BOARD_CLOCK_HZ > 240000000u ? 2u : 1u)
#define TP_HCLK_HZ   (TP_BOARD_CLOCK_HZ / TP_HCLK_DIV)
#define TP_APB_DIV   (TP_HCLK_HZ > 120000000u ? 2u : 1u)
#define TP_PCLK_HZ   (TP_HCLK_HZ / TP_APB_DIV)
#define TP_HPRE_BITS (TP_HCLK_DIV == 2u ? 0x8u : 0x0u)
#define TP_PPRE_BITS (TP_APB_DIV == 2u ? 0x4u : 0x0u)
/* Flash latency / programming delay for the AXI clock in VOS0/VOS1 (RM0433 table 17). */
#define TP_FLASH_LATENCY ((TP_HCLK_HZ <= 70000000u) ? 0u : (TP_HCLK_HZ <= 140000000u) ? 1u \
                          : (TP_HCLK_HZ <= 185000000u) ? 2u : (TP_HCLK_HZ <= 210000000u) ? 3u : 4u)
#define TP_FLASH_WRHIGHFREQ ((TP_HCLK_HZ <= 70000000u) ? 0u : (TP_HCLK_HZ <= 185000000u) ? 1u : 2u)

#if (TP_BOARD_CLOCK_HZ * TP_PLL_P) % TP_PLL_IN_HZ != 0
#error "TP_BOARD_CLOCK_HZ times the PLL P divider must be a multiple of 16 MHz on STM32H7"
#endif
#if TP_PLL_N < 12u || TP_PLL_N > 60u || TP_BOARD_CLOCK_HZ > 480000000u
#error "TP_BOARD_CLOCK_HZ is out of the STM32H7 PLL's wide VCO range (at most 480 MHz)"
#endif

static void tp_power_init(void)
{
    /* LDO supply (the Nucleo's): CR3 is written once after reset. */
    TP_PWR_CR3 = (TP_PWR_CR3 & ~(TP_PWR_CR3_BYPASS | TP_PWR_CR3_SCUEN)) | TP_PWR_CR3_LDOEN;
    while ((TP_PWR_CSR1 & TP_PWR_CSR1_ACTVOSRDY) == 0u) {
    }
    TP_PWR_D3CR = (TP_PWR_D3CR & ~TP_PWR_D3CR_VOS_MASK) | TP_PWR_D3CR_VOS1;
    while ((TP_PWR_D3CR & TP_PWR_D3CR_VOSRDY) == 0u) {
    }
#if TP_BOARD_CLOCK_HZ > 400000000u
    TP_RCC_APB4ENR |= TP_RCC_APB4ENR_SYSCFGEN;
    (void)TP_RCC_APB4ENR;
    TP_SYSCFG_PWRCR |= TP_SYSCFG_PWRCR_ODEN; /* VOS0: needed above 400 MHz (silicon rev V) */
    while ((TP_PWR_D3CR & TP_PWR_D3CR_VOSRDY) == 0u) {
    }
#endif
}

static void tp_clock_init(void)
{
    const uint32_t pll_n = TP_PLL_N;
    const uint32_t pll_p = TP_PLL_P;
    TP_RCC_CR |= TP_RCC_CR_HSION;
    while ((TP_RCC_CR & TP_RCC_CR_HSIRDY) == 0u) {
    }
    TP_RCC_PLLCKSELR = (TP_RCC_PLLCKSELR & ~0x3F3u) | (TP_PLL_M << 4); /* PLLSRC = HSI, DIVM1 */
    TP_RCC_PLLCFGR = (TP_RCC_PLLCFGR & ~0xFu) | TP_RCC_PLLCFGR_PLL1RGE_8_16
                     | TP_RCC_PLLCFGR_DIVP1EN;
    TP_RCC_PLL1DIVR = (pll_n - 1u) | ((pll_p - 1u) << 9) | (3u << 16) | (1u << 24);
    TP_RCC_CR |= TP_RCC_CR_PLL1ON;
    while ((TP_RCC_CR & TP_RCC_CR_PLL1RDY) == 0u) {
    }
    TP_FLASH_ACR = TP_FLASH_LATENCY | (TP_FLASH_WRHIGHFREQ << 4);
    while ((TP_FLASH_ACR & TP_FLASH_ACR_LATENCY_MASK) != TP_FLASH_LATENCY) {
    }
    TP_RCC_D1CFGR = TP_HPRE_BITS | (TP_PPRE_BITS << 4); /* D1CPRE /1, HPRE, D1PPRE (APB3) */
    TP_RCC_D2CFGR = (TP_PPRE_BITS << 4) | (TP_PPRE_BITS << 8); /* APB1, APB2 */
    TP_RCC_D3CFGR = TP_PPRE_BITS << 4;                         /* APB4 */
    TP_RCC_CFGR = (TP_RCC_CFGR & ~TP_RCC_CFGR_SW_MASK) | TP_RCC_CFGR_SW_PLL1;
    while ((TP_RCC_CFGR & TP_RCC_CFGR_SWS_MASK) != TP_RCC_CFGR_SWS_PLL1) {
    }
}

static void tp_uart_init(void)
{
#if TP_UART_BUS_APB2
    TP_RCC_APB2ENR |= 1u << TP_UART_ENABLE_BIT;
    (void)TP_RCC_APB2ENR;
#else
    TP_RCC_APB1LENR |= 1u << TP_UART_ENABLE_BIT;
    (void)TP_RCC_APB1LENR;
#endif
    TP_RCC_AHB4ENR |= (1u << TP_UART_TX_PORT) | (1u << TP_UART_RX_PORT);
    (void)TP_RCC_AHB4ENR;
    tp_stm32_gpio_af(TP_GPIO_PORT(TP_UART_TX_PORT), TP_UART_TX_PIN, TP_UART_AF);
    tp_stm32_gpio_af(TP_GPIO_PORT(TP_UART_RX_PORT), TP_UART_RX_PIN, TP_UART_RX_AF);
    tp_stm32_usart_start(TP_PCLK_HZ); /* the U(S)ART kernel clock is its APB clock at reset */
}

void tp_bsp_init(void)
{
    tp_power_init();
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
