#ifndef POLYGON_H
#define POLYGON_H
/* Read only by area.c and perimeter.c. */
#include "config.h"
static inline int polygon_valid(int sides) { return sides >= 3 && sides <= SHAPES_MAX_SIDES; }
#endif
