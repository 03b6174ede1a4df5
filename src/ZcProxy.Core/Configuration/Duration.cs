using System.Globalization;
using System.Text.Json;

namespace ZcProxy.Core.Configuration;

/// <summary>Durations in config: "500ms", "10s", "10m", "1h", "2d", or a TimeSpan string ("00:00:10").</summary>
internal static class Duration
{
    /// <summary>
    /// The longest timeout ZcProxy accepts for a setting that runs a timer: 24 days, just under what .NET's timers take
    /// (CancelAfter, Task.WaitAsync, SocketsHttpHandler.ConnectTimeout: int.MaxValue milliseconds, about 24.8 days).
    /// </summary>
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromDays(24);

    /// <summary>How <see cref="MaxTimeout"/> reads in messages.</summary>
    public const string MaxTimeoutText = "24d";

    /// <summary>Under TimeSpan.MaxValue (about 9.22e14 ms), clear of rounding at the edge (about 28,500 years).</summary>
    private const double MaxMilliseconds = 9e14;

    /// <summary>False for anything that is not a non-negative duration TimeSpan can hold ("99999999999d" is not).</summary>
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var s = text.Trim();
        if (s.Contains(':')) return TimeSpan.TryParse(s, CultureInfo.InvariantCulture, out value) && value >= TimeSpan.Zero;
        int i = 0;
        while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.')) i++;
        if (i == 0 || !double.TryParse(s.AsSpan(0, i), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n)) return false;
        double? milliseconds = s[i..].Trim().ToLowerInvariant() switch
        {
            "ms" => n,
            "s" or "" => n * 1000,
            "m" => n * 60_000,
            "h" => n * 3_600_000,
            "d" => n * 86_400_000,
            _ => null,
        };
        return milliseconds is { } ms && TryFromMilliseconds(ms, out value);
    }

    public static bool TryRead(JsonElement element, out TimeSpan value)
    {
        value = default;
        if (element.ValueKind == JsonValueKind.Number && element.TryGetDouble(out var seconds)) return TryFromSeconds(seconds, out value);
        return element.ValueKind == JsonValueKind.String && TryParse(element.GetString(), out value);
    }

    /// <summary>A JSON number of seconds; false when negative or beyond what TimeSpan holds (1e300).</summary>
    public static bool TryFromSeconds(double seconds, out TimeSpan value) => TryFromMilliseconds(seconds * 1000, out value);

    private static bool TryFromMilliseconds(double milliseconds, out TimeSpan value)
    {
        value = default;
        // TimeSpan.FromMilliseconds throws beyond TimeSpan.MaxValue; the comparison also rejects NaN and infinity.
        if (!(milliseconds is >= 0 and <= MaxMilliseconds)) return false;
        value = TimeSpan.FromMilliseconds(milliseconds);
        return true;
    }
}
