#include <stdio.h>
#include <string.h>
#include "greet.h"

static int self_test(void) {
  char buf[64];
  int failures = 0;
  if (greet(buf, sizeof buf, "test") != 12 || strcmp(buf, "Hello, test!") != 0) failures++;
  if (square(7) != 49) failures++;
  if (strncmp(greet_version(), "hello ", 6) != 0) failures++;
  printf("self-test: %s\n", failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--self-test") == 0) return self_test();
  char buf[256];
  greet(buf, sizeof buf, argc > 1 ? argv[1] : "bldr");
  printf("%s (%s)\n", buf, greet_version());
  return 0;
}
