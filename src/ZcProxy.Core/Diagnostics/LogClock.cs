using System.Globalization;
using System.Text;

namespace ZcProxy.Core.Diagnostics;

/// <summary>
/// The access log's timestamps ($time_local, $time_iso8601), formatted once per second and shared by every line of
/// that second, as nginx caches its time strings.
/// </summary>
internal static class LogClock
{
    private static Stamp? _current;

    internal sealed record Stamp(long UnixSeconds, byte[] Local, byte[] Iso8601);

    public static Stamp Now()
    {
        var now = DateTimeOffset.UtcNow;
        long seconds = now.ToUnixTimeSeconds();
        var current = Volatile.Read(ref _current);
        if (current is not null && current.UnixSeconds == seconds) return current;
        var created = Create(TimeZoneInfo.ConvertTime(now, TimeZoneInfo.Local), seconds);
        Volatile.Write(ref _current, created);
        return created;
    }

    internal static Stamp Create(DateTimeOffset local, long unixSeconds)
    {
        // nginx: 02/Dec/2026:08:18:45 +0000 and 2026-12-02T08:18:45+00:00
        var text = local.ToString("dd/MMM/yyyy:HH:mm:ss zzz", CultureInfo.InvariantCulture).Remove(24, 1);
        var iso = local.ToString("yyyy-MM-dd'T'HH:mm:sszzz", CultureInfo.InvariantCulture);
        return new Stamp(unixSeconds, Encoding.ASCII.GetBytes(text), Encoding.ASCII.GetBytes(iso));
    }
}
