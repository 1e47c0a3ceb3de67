/* The clock one core actually runs at: a chain of dependent 1-cycle register-to-register integer
 * adds (latency 1 on every x86-64 core since Nehalem), so adds per second = cycles per second.
 * Register operands, not immediates: Golden Cove and later fold `add reg, imm` chains in the
 * renamer (the H100 host's Xeon reported 6.9 GHz with them). Prints GHz, the best of 400 runs of ~5 ms (a shared machine preempts some).
 *   gcc -O2 -o clock clock.c && ./clock */
#include <stdio.h>
#include <time.h>

int main(void) {
    const unsigned long n = 20000000UL;  /* ~5 ms: short enough to fit between other processes' slices */
    double best = 0;
    for (int rep = 0; rep < 400; rep++) {
        unsigned long x = 0, one = 1;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (unsigned long i = 0; i < n; i += 16) {
            __asm__ volatile(
                "add %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\t"
                "add %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\t"
                "add %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\t"
                "add %1,%0\n\tadd %1,%0\n\tadd %1,%0\n\tadd %1,%0"
                : "+r"(x)
                : "r"(one));
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
        double ghz = x / s / 1e9;
        if (ghz > best) best = ghz;
    }
    printf("%.3f\n", best);
    return 0;
}
