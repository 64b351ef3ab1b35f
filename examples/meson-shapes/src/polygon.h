#ifndef POLYGON_H
#define POLYGON_H
/* Read only by area.c, perimeter.c and polygon.c. */
#include "config.h"
int polygon_sides_ok(int sides);
static inline int polygon_valid(int sides) { return polygon_sides_ok(sides); }
#endif
