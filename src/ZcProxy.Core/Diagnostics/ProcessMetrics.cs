using System.Diagnostics;
using System.Globalization;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// The standard Prometheus process metrics (the names every exporter uses: process_cpu_seconds_total,
/// process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds, process_max_fds,
/// process_start_time_seconds, process_threads), read from /proc/self at scrape time, as client_golang does.
/// </summary>
internal static class ProcessMetrics
{
    /// <summary>USER_HZ: /proc reports CPU times in these ticks; the kernel fixes it at 100 for user space on every architecture.</summary>
    private const double TicksPerSecond = 100;

    public static void Register(ProxyMetrics metrics)
    {
        double startTime = Process.GetCurrentProcess().StartTime.ToUniversalTime().Subtract(DateTime.UnixEpoch).TotalSeconds;
        metrics.ObservedCounter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
            () => Stat() is { } s ? (s.UserTicks + s.SystemTicks) / TicksPerSecond : 0);
        metrics.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", () => Stat() is { } s ? s.RssPages * (double)Environment.SystemPageSize : 0);
        metrics.Gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", () => Stat() is { } s ? s.VirtualBytes : 0);
        metrics.Gauge("process_threads", "Number of OS threads in the process.", () => Stat() is { } s ? s.Threads : 0);
        metrics.Gauge("process_open_fds", "Number of open file descriptors.", OpenFds);
        metrics.Gauge("process_max_fds", "Maximum number of open file descriptors.", MaxFds);
        metrics.Gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", () => startTime);
    }

    internal readonly record struct ProcStat(long UserTicks, long SystemTicks, long Threads, double VirtualBytes, long RssPages);

    /// <summary>Fields 14, 15, 20, 23 and 24 of /proc/self/stat (man 5 proc), counted after the parenthesised command name.</summary>
    internal static ProcStat? Parse(string stat)
    {
        int close = stat.LastIndexOf(')');
        if (close < 0) return null;
        var f = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        // f[0] is field 3 (state), so field N is f[N - 3].
        if (f.Length < 22) return null;
        static long L(string s) => long.Parse(s, CultureInfo.InvariantCulture);
        return new ProcStat(L(f[11]), L(f[12]), L(f[17]), L(f[20]), L(f[21]));
    }

    private static ProcStat? Stat()
    {
        try { return Parse(File.ReadAllText("/proc/self/stat")); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return null; }
    }

    private static double OpenFds()
    {
        try { return Directory.EnumerateFileSystemEntries("/proc/self/fd").Count(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return 0; }
    }

    private static double MaxFds()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/limits"))
            {
                if (!line.StartsWith("Max open files", StringComparison.Ordinal)) continue;
                var soft = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
                return double.TryParse(soft, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) ? n : 0;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return 0;
    }
}
