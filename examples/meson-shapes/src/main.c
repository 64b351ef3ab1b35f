#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "shapes.h"
#include "config.h"

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--self-test") == 0) {
        int ok = shapes_sides("square") == 4 && shapes_perimeter(4, 2.0) == 8.0 && shapes_area(4, 3.0) > 8.99 && shapes_area(4, 3.0) < 9.01;
        printf("shapes %s self-test: %s\n", SHAPES_VERSION, ok ? "ok" : "FAILED");
        return ok ? 0 : 1;
    }
    if (argc != 3) {
        fprintf(stderr, "usage: shapes-cli NAME SIDE | --self-test\n");
        return 2;
    }
    int sides = shapes_sides(argv[1]);
    double side = atof(argv[2]);
    if (sides == 0) {
        fprintf(stderr, "shapes-cli: unknown shape %s\n", argv[1]);
        return 1;
    }
    printf("%s of side %g: area %.3f, perimeter %.3f\n", shapes_name(sides), side, shapes_area(sides, side), shapes_perimeter(sides, side));
    return 0;
}
