// Cost and correctness of three ways to ask "is this byte range of a file in the page cache?" (issue 14):
//   cachestat(2) (Linux 6.5+), mmap + mincore(2) + munmap, and preadv2(RWF_NOWAIT) probes.
// Usage: residency_cost DIR   (creates, probes and removes files of 64 KiB .. 256 MiB in DIR)
// Prints, per file size and state (hot = every page cached, cold = after posix_fadvise(DONTNEED)), the median
// nanoseconds per probe, the fraction of pages each probe reports resident, and whether probing changed residency.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

struct cachestat_range { uint64_t off, len; };
struct cachestat { uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted; };

static const long Page = 4096;
enum { Rounds = 9 };

static double now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }

/* --- the three probes: each returns the number of resident pages it saw (or sampled) ----------------------------- */

static long probe_cachestat(int fd, long len)
{
    struct cachestat_range r = { 0, (uint64_t)len };
    struct cachestat cs;
    if (syscall(__NR_cachestat, fd, &r, &cs, 0) != 0) { perror("cachestat"); exit(1); }
    return (long)cs.nr_cache;
}

static unsigned char *vec;
static long probe_mincore(int fd, long len)
{
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) { perror("mmap"); exit(1); }
    long pages = (len + Page - 1) / Page, n = 0;
    if (mincore(map, len, vec) != 0) { perror("mincore"); exit(1); }
    for (long i = 0; i < pages; i++) n += vec[i] & 1;
    munmap(map, len);
    return n;
}

/* One byte at each of `samples` pages spread over the range; EAGAIN = not cached. It cannot see the pages between. */
static long probe_nowait(int fd, long len, int samples)
{
    char b;
    long pages = len / Page, hits = 0;
    for (int i = 0; i < samples; i++)
    {
        long page = samples == 1 ? 0 : (pages - 1) * i / (samples - 1);
        struct iovec io = { &b, 1 };
        ssize_t r = preadv2(fd, &io, 1, page * Page, RWF_NOWAIT);
        if (r == 1) hits++;
        else if (!(r < 0 && errno == EAGAIN)) { perror("preadv2"); exit(1); }
    }
    return hits * (pages / samples);
}

/* ------------------------------------------------------------------------------------------------------------------ */

static void make_hot(int fd, long len)
{
    static char buf[1 << 20];
    for (long off = 0; off < len; off += sizeof buf) if (pread(fd, buf, sizeof buf, off) < 0) { perror("pread"); exit(1); }
}

static void make_cold(int fd) { fdatasync(fd); posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); }

typedef long (*probe_fn)(int, long);
static long nowait1(int fd, long len) { return probe_nowait(fd, len, 1); }
static long nowait8(int fd, long len) { return probe_nowait(fd, len, 8); }

static void measure(const char *name, probe_fn probe, int fd, long len, int hot, int iterations)
{
    double rounds[Rounds];
    long seen = 0, first = 0;
    for (int r = 0; r < Rounds; r++)
    {
        if (hot) make_hot(fd, len); else make_cold(fd);
        if (r == 0) first = probe(fd, len); // the answer a real hit would act on: the first probe after the state was set
        double t0 = now_ns();
        for (int i = 0; i < iterations; i++) seen = probe(fd, len);
        rounds[r] = (now_ns() - t0) / iterations;
    }
    qsort(rounds, Rounds, sizeof rounds[0], cmp);
    long pages = len / Page;
    // Did the probe itself change residency? (RWF_NOWAIT may start readahead on a miss.)
    if (!hot) make_cold(fd);
    probe(fd, len);
    usleep(20000); // let readahead I/O started by the probe land
    long after = probe_cachestat(fd, len);
    printf("%-10s %9ld KiB  %-4s  %10.0f ns (min %8.0f)  first probe: %5.1f%%  repeated: %5.1f%%  ",
           name, len / 1024, hot ? "hot" : "cold", rounds[Rounds / 2], rounds[0], 100.0 * first / pages, 100.0 * seen / pages);
    if (hot) printf("\n"); else printf("pages cached by one cold probe: %ld\n", after);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    long sizes[] = { 64L << 10, 1L << 20, 16L << 20, 256L << 20 };
    vec = malloc((256L << 20) / Page);
    static char chunk[1 << 20];
    memset(chunk, 0x5a, sizeof chunk);
    printf("probe          file size  state  median ns per probe (min)     resident as seen by the first and repeated probes\n");
    for (unsigned s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    {
        long len = sizes[s];
        char path[4096];
        snprintf(path, sizeof path, "%s/residency-cost-%ld.bin", dir, len);
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0) { perror(path); return 1; }
        for (long off = 0; off < len; off += sizeof chunk) if (pwrite(fd, chunk, len - off < (long)sizeof chunk ? len - off : (long)sizeof chunk, off) < 0) { perror("write"); return 1; }
        int iterations = len >= (16L << 20) ? 200 : 2000;
        for (int hot = 1; hot >= 0; hot--)
        {
            measure("cachestat", probe_cachestat, fd, len, hot, iterations);
            measure("mincore", probe_mincore, fd, len, hot, iterations);
            measure("nowait-1", nowait1, fd, len, hot, iterations);
            measure("nowait-8", nowait8, fd, len, hot, iterations);
        }
        close(fd);
        unlink(path);
    }
    return 0;
}
