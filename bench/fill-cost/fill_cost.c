// What a cache fill costs in CPU, by how the body reaches the cache file while it is relayed to the client (issue 14):
//   splice    upstream socket -> pipe -> client socket, no file (the floor: an uncached response)
//   tee       upstream -> pipe A; tee(A -> B); splice(A -> file at offset); splice(B -> client): no user-space copy
//   copy      recv into a buffer; send to the client; pwrite to the file (page cache): ZcProxy's fill before issue 14
//   directio  recv into an aligned buffer; send to the client; pwrite to the file opened O_DIRECT (no page cache)
//   tee-read-directio  upstream -> pipe A; tee(A -> B); splice(B -> client); read(A -> aligned buffer); pwrite O_DIRECT:
//             the client's bytes stay in the kernel, the file's pass through user space once (one copy, no page cache)
//   tee-odirect  as tee, but the file opened O_DIRECT (splice into an O_DIRECT file), to see whether the kernel takes it
//   tee-fadvise  as tee, and every 8 MiB posix_fadvise(DONTNEED) of all written so far (ZcProxy's rule for copied fills
//             kept out of the page cache): starts write-back, drops the pages already clean
//   tee-dropbehind  as tee, and every 8 MiB sync_file_range(WRITE) of the chunk just written, then
//             sync_file_range(WAIT) + DONTNEED of the chunk before it (written back by then): pages dropped behind the writes
// Besides the CPU, the page cache the fill occupies: the most of the file cached at any 8 MiB step, and what is
// cached when the relay ends (before the final fdatasync): what a fill leaves in memory.
// Over TCP on 127.0.0.1: a producer thread sends the body, a consumer thread discards what the client socket gets
// (recv MSG_TRUNC), and the relay thread in the middle is measured: CLOCK_THREAD_CPUTIME_ID around the whole body,
// including the fdatasync at the end (so the write-back of page-cache fills is charged to it, as the flusher would be).
// Usage: fill_cost DIR [MiB per run, default 512] [runs, default 3] [mechanism...]; prints CPU-s per GB (10^9 bytes).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { Chunk = 1 << 20, PipeSize = 1 << 20, DropEvery = 8 << 20 };
static long total;
static long peakCached; // pages, the most seen at a DropEvery step

struct cachestat_range { unsigned long long off, len; };
struct cachestat { unsigned long long cache, dirty, writeback, evicted, recently_evicted; };
static long cached_pages(int fd)
{
    struct cachestat_range r = { 0, 0 };
    struct cachestat st;
    return syscall(451, fd, &r, &st, 0) == 0 ? (long)st.cache : -1;
}

/* After the file reached `off` bytes: the mode's page-cache handling at each DropEvery boundary crossed. */
static void behind(const char *mode, int file, long *next, long off)
{
    while (off >= *next)
    {
        long chunk = *next - DropEvery;
        if (!strcmp(mode, "tee-fadvise")) posix_fadvise(file, 0, *next, POSIX_FADV_DONTNEED);
        else if (!strcmp(mode, "tee-dropbehind"))
        {
            sync_file_range(file, chunk, DropEvery, SYNC_FILE_RANGE_WRITE);
            if (chunk >= DropEvery)
            {
                sync_file_range(file, chunk - DropEvery, DropEvery, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
                posix_fadvise(file, chunk - DropEvery, DropEvery, POSIX_FADV_DONTNEED);
            }
        }
        long c = cached_pages(file);
        if (c > peakCached) peakCached = c;
        *next += DropEvery;
    }
}

static void die(const char *what) { perror(what); exit(1); }
static double secs(clockid_t c) { struct timespec t; clock_gettime(c, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static void sort(double *v, int n)
{
    for (int i = 0; i < n; i++) for (int j = i + 1; j < n; j++) if (v[j] < v[i]) { double t = v[i]; v[i] = v[j]; v[j] = t; }
}

static void connected_pair(int *a, int *b)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof addr;
    if (bind(l, (void *)&addr, sizeof addr) || listen(l, 1) || getsockname(l, (void *)&addr, &len)) die("listen");
    *a = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(*a, (void *)&addr, sizeof addr)) die("connect");
    *b = accept(l, NULL, NULL);
    close(l);
}

static void *produce(void *arg)
{
    int fd = *(int *)arg;
    pthread_setname_np(pthread_self(), "producer");
    char *buf = malloc(Chunk);
    memset(buf, 0x5a, Chunk);
    for (long sent = 0; sent < total;)
    {
        ssize_t n = send(fd, buf, Chunk < total - sent ? Chunk : total - sent, MSG_NOSIGNAL);
        if (n <= 0) break; // the relay gave up (tee-odirect) and shut the socket
        sent += n;
    }
    free(buf);
    return NULL;
}

static void *consume(void *arg)
{
    int fd = *(int *)arg;
    pthread_setname_np(pthread_self(), "consumer");
    for (long got = 0; got < total;)
    {
        ssize_t n = recv(fd, NULL, Chunk, MSG_TRUNC);
        if (n <= 0) return NULL; // the relay gave up (tee-odirect) and shut the socket
        got += n;
    }
    return NULL;
}

static void pipe_pair(int p[2]) { if (pipe(p)) die("pipe"); fcntl(p[1], F_SETPIPE_SZ, PipeSize); }

/* Moves everything from pipe `from` into fd `to` (at *off when off != NULL). */
static void drain(int from, int to, loff_t *off, long n)
{
    while (n > 0)
    {
        ssize_t w = splice(from, NULL, to, off, n, SPLICE_F_MOVE);
        if (w <= 0) die("splice out");
        n -= w;
    }
}

static void relay(const char *mode, int up, int client, int file)
{
    if (!strcmp(mode, "tee-read-directio"))
    {
        int a[2], b[2];
        pipe_pair(a);
        pipe_pair(b);
        char *buf = aligned_alloc(4096, PipeSize);
        long off = 0, filled = 0;
        for (long moved = 0; moved < total;)
        {
            ssize_t n = splice(up, NULL, a[1], NULL, total - moved < PipeSize ? total - moved : PipeSize, SPLICE_F_MOVE);
            if (n <= 0) die("splice in");
            moved += n;
            for (long teed = 0; teed < n;)
            {
                ssize_t t = tee(a[0], b[1], n - teed, 0);
                if (t <= 0) die("tee");
                for (long left = t; left > 0;)
                {
                    ssize_t r = read(a[0], buf + filled, left < PipeSize - filled ? left : PipeSize - filled);
                    if (r <= 0) die("read pipe");
                    filled += r;
                    left -= r;
                    if (filled == PipeSize) { if (pwrite(file, buf, filled, off) != filled) die("pwrite"); off += filled; filled = 0; }
                }
                teed += t;
            }
            drain(b[0], client, NULL, n);
        }
        if (filled > 0 && pwrite(file, buf, (filled + 4095) & ~4095L, off) < 0) die("pwrite tail");
        free(buf);
        close(a[0]); close(a[1]); close(b[0]); close(b[1]);
        return;
    }
    if (!strcmp(mode, "splice") || !strncmp(mode, "tee", 3))
    {
        int a[2], b[2];
        pipe_pair(a);
        pipe_pair(b);
        loff_t off = 0;
        long next = DropEvery;
        for (long moved = 0; moved < total;)
        {
            ssize_t n = splice(up, NULL, a[1], NULL, total - moved < PipeSize ? total - moved : PipeSize, SPLICE_F_MOVE);
            if (n <= 0) die("splice in");
            moved += n;
            if (!strcmp(mode, "splice")) { drain(a[0], client, NULL, n); continue; }
            for (long teed = 0; teed < n;)
            {
                ssize_t t = tee(a[0], b[1], n - teed, 0);
                if (t <= 0) die("tee");
                drain(a[0], file, &off, t); // the file takes exactly what was duplicated, so A's head is always un-teed bytes
                teed += t;
            }
            behind(mode, file, &next, off);
            drain(b[0], client, NULL, n);
        }
        close(a[0]); close(a[1]); close(b[0]); close(b[1]);
        return;
    }
    char *buf = aligned_alloc(4096, Chunk);
    long off = 0;
    while (off < total)
    {
        ssize_t n = recv(up, buf, total - off < Chunk ? total - off : Chunk, MSG_WAITALL);
        if (n <= 0) die("recv");
        for (ssize_t s = 0; s < n;) { ssize_t w = send(client, buf + s, n - s, MSG_NOSIGNAL); if (w <= 0) die("send"); s += w; }
        if (pwrite(file, buf, n, off) != n) die("pwrite");
        off += n;
    }
    free(buf);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : ".";
    total = (argc > 2 ? atol(argv[2]) : 512) << 20;
    pthread_setname_np(pthread_self(), "relay");
    setvbuf(stdout, NULL, _IOLBF, 0);
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    const char *all[] = { "splice", "tee", "copy", "directio", "tee-read-directio", "tee-odirect", "tee-fadvise", "tee-dropbehind" };
    const char **modes = argc > 4 ? (const char **)&argv[4] : all;
    int count = argc > 4 ? argc - 4 : (int)(sizeof all / sizeof all[0]);
    if (count > 8 || runs > 16) { fprintf(stderr, "at most 8 mechanisms and 16 runs\n"); return 2; }
    printf("%ld MiB per run, %d interleaved runs; relay thread CPU incl. fdatasync: median (min-max) CPU-s/GB; median wall GB/s\n", total >> 20, runs);
    double cpu[8][16], wall[8][16], sync[8][16], peak[8][16], left[8][16];
    int usable[8];
    for (int m = 0; m < count; m++) usable[m] = 1;
    // Interleaved (every mechanism once per round) so that load from other work on the machine hits them alike.
    for (int r = 0; r < runs; r++)
        for (int m = 0; m < count; m++)
        {
            if (!usable[m]) continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/fill-cost-%d.bin", dir, getpid());
            int direct = strstr(modes[m], "directio") != NULL || !strcmp(modes[m], "tee-odirect");
            int file = open(path, O_WRONLY | O_CREAT | O_TRUNC | (direct ? O_DIRECT : 0), 0600);
            if (file < 0) die(path);
            int up_w, up_r, cl_w, cl_r;
            connected_pair(&up_w, &up_r);
            connected_pair(&cl_w, &cl_r);
            pthread_t p, c;
            pthread_create(&p, NULL, produce, &up_w);
            pthread_create(&c, NULL, consume, &cl_r);
            if (!strcmp(modes[m], "tee-odirect"))
            {
                // splice into an O_DIRECT file: try one pipeful and report what the kernel says.
                int a[2];
                pipe_pair(a);
                ssize_t n = splice(up_r, NULL, a[1], NULL, Chunk, SPLICE_F_MOVE);
                loff_t off = 0;
                ssize_t w = n > 0 ? splice(a[0], NULL, file, &off, n, SPLICE_F_MOVE) : -1;
                if (w < 0) printf("%-12s refused: splice into an O_DIRECT file: %s\n", modes[m], strerror(errno));
                else printf("%-12s accepted a first pipeful (%zd bytes); not measured further\n", modes[m], w);
                usable[m] = 0;
                close(a[0]); close(a[1]);
                shutdown(up_r, SHUT_RDWR); shutdown(up_w, SHUT_RDWR); shutdown(cl_w, SHUT_RDWR); shutdown(cl_r, SHUT_RDWR);
                pthread_join(p, NULL); pthread_join(c, NULL);
                close(up_w); close(up_r); close(cl_w); close(cl_r); close(file); unlink(path);
                continue;
            }
            peakCached = 0;
            double t0 = secs(CLOCK_THREAD_CPUTIME_ID), w0 = secs(CLOCK_MONOTONIC);
            relay(modes[m], up_r, cl_w, file);
            double t1 = secs(CLOCK_THREAD_CPUTIME_ID);
            long cachedAtEnd = cached_pages(file);
            left[m][r] = cachedAtEnd * 4096.0 / (1 << 20);
            peak[m][r] = (peakCached > cachedAtEnd ? peakCached : cachedAtEnd) * 4096.0 / (1 << 20);
            if (strcmp(modes[m], "splice")) fdatasync(file);
            cpu[m][r] = secs(CLOCK_THREAD_CPUTIME_ID) - t0;
            sync[m][r] = secs(CLOCK_THREAD_CPUTIME_ID) - t1;
            wall[m][r] = secs(CLOCK_MONOTONIC) - w0;
            pthread_join(p, NULL);
            pthread_join(c, NULL);
            close(up_w); close(up_r); close(cl_w); close(cl_r);
            posix_fadvise(file, 0, 0, POSIX_FADV_DONTNEED);
            close(file);
            unlink(path);
        }
    double gb = total / 1e9;
    for (int m = 0; m < count; m++)
    {
        if (!usable[m]) continue;
        sort(cpu[m], runs); sort(wall[m], runs); sort(sync[m], runs); sort(peak[m], runs); sort(left[m], runs);
        printf("%-12s %6.3f (%.3f-%.3f) CPU-s/GB, of which fdatasync %.3f   %5.2f GB/s   cached MiB: peak %.0f, at the end %.0f\n", modes[m],
               cpu[m][runs / 2] / gb, cpu[m][0] / gb, cpu[m][runs - 1] / gb, sync[m][runs / 2] / gb, gb / wall[m][runs / 2],
               peak[m][runs / 2], left[m][runs / 2]);
    }
    return 0;
}
