/* Steps a process's wall clock (CLOCK_REALTIME, gettimeofday, time) by the number of seconds written in the
 * file $CLOCKSHIFT_FILE, as an NTP step or an operator's `date -s` would; the monotonic clocks are left
 * alone, as the kernel leaves them. For the clock-jump test of the edge daemon, loaded with LD_PRELOAD.
 * libfaketime 0.9.10 cannot be used for this: with its monotonic clock left real it hands
 * clock_nanosleep(TIMER_ABSTIME) a negative deadline, and every Python sleep fails with EINVAL.
 * Build: gcc -shared -fPIC -O2 -o libclockshift.so clockshift.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime(void) {
    static clock_gettime_fn fn;
    if (!fn) fn = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return fn;
}

/* The offset in nanoseconds, re-read at most every 20 ms of real monotonic time. */
static long long offset_ns(void) {
    static long long cached, read_at = -1;
    struct timespec now;
    real_clock_gettime()(CLOCK_MONOTONIC, &now);
    long long mono = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    if (read_at >= 0 && mono - read_at < 20000000LL) return cached;
    read_at = mono;
    const char *path = getenv("CLOCKSHIFT_FILE");
    if (!path) return cached = 0;
    FILE *f = fopen(path, "r");
    if (!f) return cached;
    double seconds = 0;
    if (fscanf(f, "%lf", &seconds) == 1) cached = (long long)(seconds * 1e9);
    fclose(f);
    return cached;
}

static void shift(struct timespec *ts) {
    long long t = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns();
    ts->tv_sec = t / 1000000000LL;
    ts->tv_nsec = t % 1000000000LL;
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
    int rc = real_clock_gettime()(clk, ts);
    if (rc == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE)) shift(ts);
    return rc;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts;
    int rc = clock_gettime(CLOCK_REALTIME, &ts);
    if (rc == 0 && tv) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    (void)tz;
    return rc;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out) *out = ts.tv_sec;
    return ts.tv_sec;
}
