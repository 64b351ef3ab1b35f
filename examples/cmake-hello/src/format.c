#include <assert.h>
#include "greet.h"
#include "table.h"

int square(int n) {
  assert(n >= 0 && n < SQUARES_COUNT);
  return squares[n];
}
