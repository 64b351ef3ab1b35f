#ifndef SHAPES_H
#define SHAPES_H

/* A regular polygon of `sides` sides of length `side`. */
double shapes_area(int sides, double side);
double shapes_perimeter(int sides, double side);
/* The name of a polygon of `sides` sides ("triangle", ...), or NULL. */
const char *shapes_name(int sides);
/* The number of sides of the polygon named `name`, or 0. */
int shapes_sides(const char *name);

#endif
