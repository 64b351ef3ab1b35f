#ifndef CALC_SELFTEST_H
#define CALC_SELFTEST_H
#include <stdio.h>
/* Run the built-in checks, print one line each to out; returns 1 when all pass. */
int calc_self_test(FILE *out);
#endif
