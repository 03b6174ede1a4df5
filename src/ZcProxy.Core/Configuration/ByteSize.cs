using System.Globalization;
using System.Text.Json;

namespace ZcProxy.Core.Configuration;

/// <summary>Sizes in config: an integer of bytes, or a string with a unit (KiB, MiB, GiB, k, m, g, B).</summary>
internal static class ByteSize
{
    public static bool TryParse(string? text, out long bytes)
    {
        bytes = 0;
        if (string.IsNullOrWhiteSpace(text)) return false;
        var s = text.Trim();
        int i = 0;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        if (i == 0) return false;
        if (!long.TryParse(s.AsSpan(0, i), NumberStyles.None, CultureInfo.InvariantCulture, out var number)) return false;
        long multiplier = s[i..].Trim().ToLowerInvariant() switch
        {
            "" or "b" => 1,
            "k" or "kb" or "kib" => 1L << 10,
            "m" or "mb" or "mib" => 1L << 20,
            "g" or "gb" or "gib" => 1L << 30,
            "t" or "tb" or "tib" => 1L << 40,
            _ => -1,
        };
        if (multiplier < 0) return false;
        try { bytes = checked(number * multiplier); } catch (OverflowException) { return false; }
        return true;
    }

    public static bool TryRead(JsonElement element, out long bytes)
    {
        bytes = 0;
        return element.ValueKind switch
        {
            JsonValueKind.Number => element.TryGetInt64(out bytes) && bytes >= 0,
            JsonValueKind.String => TryParse(element.GetString(), out bytes),
            _ => false,
        };
    }

    public static string Format(long bytes) => bytes switch
    {
        >= 1L << 30 when bytes % (1L << 30) == 0 => $"{bytes >> 30}GiB",
        >= 1L << 20 when bytes % (1L << 20) == 0 => $"{bytes >> 20}MiB",
        >= 1L << 10 when bytes % (1L << 10) == 0 => $"{bytes >> 10}KiB",
        _ => bytes.ToString(CultureInfo.InvariantCulture),
    };
}
