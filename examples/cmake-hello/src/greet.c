#include <assert.h>
#include <stdio.h>
#include "greet.h"
#include "version.h"

size_t greet(char *buf, size_t size, const char *name) {
  assert(buf != NULL && name != NULL);
  int n = snprintf(buf, size, "Hello, %s!", name);
  return n < 0 ? 0 : (size_t)n;
}

const char *greet_version(void) {
  return "hello " HELLO_VERSION;
}
