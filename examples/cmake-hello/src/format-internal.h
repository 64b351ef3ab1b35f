#ifndef FORMAT_INTERNAL_H
#define FORMAT_INTERNAL_H

/* Used by format.c only: touching it rebuilds format.c.o and nothing else. */
static inline int in_table(int n) {
  return n >= 0 && n < SQUARES_COUNT;
}

#endif
