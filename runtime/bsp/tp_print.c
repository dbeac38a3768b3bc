/* tinyprune board support: small number and string writers over tp_bsp_putc. */
#include "tp_bsp.h"

static const char tp_hex_digits[] = "0123456789abcdef";

void tp_print_str(const char *s)
{
    while (*s != '\0') {
        tp_bsp_putc(*s++);
    }
}

void tp_print_u32(uint32_t value)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0u);
    while (n > 0) {
        tp_bsp_putc(digits[--n]);
    }
}

void tp_print_i32(int32_t value)
{
    if (value < 0) {
        tp_bsp_putc('-');
        tp_print_u32(0u - (uint32_t)value);
    } else {
        tp_print_u32((uint32_t)value);
    }
}

void tp_print_hex32(uint32_t value)
{
    tp_print_str("0x");
    for (int shift = 28; shift >= 0; shift -= 4) {
        tp_bsp_putc(tp_hex_digits[(value >> (uint32_t)shift) & 0xFu]);
    }
}

void tp_print_hex_bytes(const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        tp_bsp_putc(tp_hex_digits[data[i] >> 4]);
        tp_bsp_putc(tp_hex_digits[data[i] & 0xFu]);
    }
}
