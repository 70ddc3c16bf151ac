// tierbed built-in chip kernel "add": out = a + b, elementwise (signature IN, IN, OUT).
#include "elementwise.h"

extern "C" __aicore__ void kernel_entry(__gm__ int64_t *args) { tierbed::binary_kernel(tierbed::kAdd, args); }
