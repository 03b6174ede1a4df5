using System.Runtime.CompilerServices;

namespace ZcProxy.Core.Balancing;

/// <summary>
/// Settings parsed once per config object (a reload brings new objects; old ones and their settings go with them). The
/// same few configs are asked for request after request: the last one answers without the table's lookup.
/// </summary>
internal sealed class SettingsByConfig<TConfig, TSettings>(Func<TConfig, TSettings> parse)
    where TConfig : class
{
    private readonly ConditionalWeakTable<TConfig, Entry> _table = new();
    private readonly ConditionalWeakTable<TConfig, Entry>.CreateValueCallback _create = c => new Entry(c, parse(c));
    private Entry? _last;

    public TSettings For(TConfig config)
    {
        if (_last is { } last && ReferenceEquals(last.Config, config)) return last.Settings;
        var entry = _table.GetValue(config, _create);
        _last = entry;
        return entry.Settings;
    }

    /// <summary>A table entry: the config with its settings, so the last one asked for is one reference.</summary>
    private sealed record Entry(TConfig Config, TSettings Settings);
}
