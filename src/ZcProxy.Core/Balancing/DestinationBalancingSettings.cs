using System.Globalization;
using Yarp.ReverseProxy.Configuration;
using ZcProxy.Core.Configuration;

namespace ZcProxy.Core.Balancing;

/// <summary>A destination's pool settings, read from its Metadata (see <see cref="BalancingMetadataKeys"/>).</summary>
internal sealed record DestinationBalancingSettings
{
    public static readonly DestinationBalancingSettings Default = new();
    public const int MaxWeight = 10_000;

    public int Weight { get; init; } = 1;
    public bool Backup { get; init; }
    public int MaxConnections { get; init; }
    public TimeSpan SlowStart { get; init; }

    private static readonly SettingsByConfig<DestinationConfig, DestinationBalancingSettings> Cache = new(static c => Parse(c.Metadata, static (_, _) => { }));

    /// <summary>Settings for a live destination; invalid values (rejected by `check`) fall back to defaults.</summary>
    public static DestinationBalancingSettings For(DestinationConfig config) => Cache.For(config);

    /// <summary>Parses the Metadata, reporting each bad value as (key, reason).</summary>
    public static DestinationBalancingSettings Parse(IReadOnlyDictionary<string, string>? metadata, Action<string, string> error)
    {
        if (metadata is null || metadata.Count == 0) return Default;
        var s = Default;
        if (metadata.TryGetValue(BalancingMetadataKeys.Weight, out var w))
        {
            if (int.TryParse(w, NumberStyles.Integer, CultureInfo.InvariantCulture, out var weight) && weight is >= 1 and <= MaxWeight)
                s = s with { Weight = weight };
            else error(BalancingMetadataKeys.Weight, $"'{w}' is not a weight: use a whole number from 1 to {MaxWeight}");
        }
        if (metadata.TryGetValue(BalancingMetadataKeys.Backup, out var b))
        {
            if (bool.TryParse(b, out var backup)) s = s with { Backup = backup };
            else error(BalancingMetadataKeys.Backup, $"'{b}' is not true or false");
        }
        if (metadata.TryGetValue(BalancingMetadataKeys.MaxConnections, out var m))
        {
            if (int.TryParse(m, NumberStyles.Integer, CultureInfo.InvariantCulture, out var max) && max >= 0) s = s with { MaxConnections = max };
            else error(BalancingMetadataKeys.MaxConnections, $"'{m}' is not a number of connections (0 = unlimited)");
        }
        if (metadata.TryGetValue(BalancingMetadataKeys.SlowStart, out var ss))
        {
            if (Duration.TryParse(ss, out var slow) && slow >= TimeSpan.Zero) s = s with { SlowStart = slow };
            else error(BalancingMetadataKeys.SlowStart, $"'{ss}' is not a duration such as \"30s\"");
        }
        return s;
    }
}
