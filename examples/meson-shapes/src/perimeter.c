#include "shapes.h"
#include "polygon.h"

double shapes_perimeter(int sides, double side) {
    return polygon_valid(sides) ? sides * side : -1.0;
}
