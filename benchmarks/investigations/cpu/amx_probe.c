/* Can a process use AMX here? What a CPU reports (cpuid flags amx_tile/amx_int8/amx_bf16) and what
 * the kernel lets a process do differ: Linux (5.16+) keeps the 8 KiB tile-data state off until a
 * process asks for it with arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), which ggml-cpu does
 * before its AMX kernels; an older kernel, or a sandbox kernel such as gVisor, may not grant it, and
 * the first tile instruction then dies with SIGILL. Prints each arch_prctl answer, XCR0's tile bits,
 * and whether ldtilecfg + tilezero + tilerelease run in a child process.
 *   gcc -O2 -mamx-tile -o amx_probe amx_probe.c && ./amx_probe */
#define _GNU_SOURCE
#include <errno.h>
#include <immintrin.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define ARCH_GET_XCOMP_SUPP 0x1021
#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static void ask(const char *what, int code, unsigned long arg, int show_mask) {
    uint64_t mask = 0;
    errno = 0;
    long rc = syscall(SYS_arch_prctl, code, show_mask ? (unsigned long)&mask : arg);
    printf("%-20s rc=%ld errno=%s", what, rc, rc ? strerror(errno) : "-");
    if (show_mask && rc == 0) printf(" mask=%#lx (bit 18 XTILEDATA: %lu)", (unsigned long)mask, (unsigned long)(mask >> 18) & 1);
    printf("\n");
}

static int tiles(void) {
    unsigned char cfg[64];
    memset(cfg, 0, sizeof cfg);
    cfg[0] = 1;                 /* palette 1 */
    cfg[16] = 64;               /* tile 0: 64 bytes per row */
    cfg[48] = 16;               /* tile 0: 16 rows */
    _tile_loadconfig(cfg);
    _tile_zero(0);
    _tile_release();
    return 0;
}

int main(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    uint64_t xcr0 = ((uint64_t)hi << 32) | lo;
    printf("XCR0=%#lx (bit 17 XTILECFG %lu, bit 18 XTILEDATA %lu)\n", (unsigned long)xcr0,
           (unsigned long)(xcr0 >> 17) & 1, (unsigned long)(xcr0 >> 18) & 1);
    ask("GET_XCOMP_SUPP", ARCH_GET_XCOMP_SUPP, 0, 1);
    ask("GET_XCOMP_PERM", ARCH_GET_XCOMP_PERM, 0, 1);
    ask("REQ_XCOMP_PERM", ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA, 0);
    ask("GET_XCOMP_PERM after", ARCH_GET_XCOMP_PERM, 0, 1);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(tiles());
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf("tile instructions: killed by signal %d (%s)\n", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        printf("tile instructions: ran (exit %d)\n", WEXITSTATUS(status));
    return 0;
}
