using System.Globalization;
using System.Text.Json;

namespace ZcProxy.Core.Configuration;

/// <summary>Durations in config: "500ms", "10s", "10m", "1h", "2d", or a TimeSpan string ("00:00:10").</summary>
internal static class Duration
{
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = default;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var s = text.Trim();
        if (s.Contains(':')) return TimeSpan.TryParse(s, CultureInfo.InvariantCulture, out value) && value >= TimeSpan.Zero;
        int i = 0;
        while (i < s.Length && (char.IsAsciiDigit(s[i]) || s[i] == '.')) i++;
        if (i == 0 || !double.TryParse(s.AsSpan(0, i), NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var n)) return false;
        double? ms = s[i..].Trim().ToLowerInvariant() switch
        {
            "ms" => n,
            "s" or "" => n * 1000,
            "m" => n * 60_000,
            "h" => n * 3_600_000,
            "d" => n * 86_400_000,
            _ => null,
        };
        if (ms is null) return false;
        value = TimeSpan.FromMilliseconds(ms.Value);
        return true;
    }

    public static bool TryRead(JsonElement element, out TimeSpan value)
    {
        value = default;
        if (element.ValueKind == JsonValueKind.Number && element.TryGetDouble(out var seconds) && seconds >= 0)
        {
            value = TimeSpan.FromSeconds(seconds);
            return true;
        }
        return element.ValueKind == JsonValueKind.String && TryParse(element.GetString(), out value);
    }
}
