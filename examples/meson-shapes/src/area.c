#include <math.h>
#include "shapes.h"
#include "polygon.h"

double shapes_area(int sides, double side) {
    if (!polygon_valid(sides)) return -1.0;
    /* n s^2 / (4 tan(pi / n)) */
    return sides * side * side / (4.0 * tan(3.14159265358979323846 / sides));
}
