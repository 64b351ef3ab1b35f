#ifndef GREET_H
#define GREET_H

#include <stddef.h>

/* Writes "Hello, <name>!" into buf (at most size bytes); returns its length. */
size_t greet(char *buf, size_t size, const char *name);

/* The n-th square, from the table generated at build time. */
int square(int n);

/* "hello 1.2.0": the version from the header cmake configured. */
const char *greet_version(void);

#endif
