using System.Collections.Frozen;

namespace ZcProxy.Core.Tls;

/// <summary>
/// Server name → value for one listener: an exact name first, then a one-label wildcard, else the default (also for
/// clients that send no SNI, e.g. when connecting by IP address). Immutable; looked up once per TLS handshake.
/// </summary>
internal sealed class SniMap<T>(IReadOnlyDictionary<string, T> exact, IReadOnlyDictionary<string, T> wildcardParents, T fallback)
    where T : class
{
    private readonly FrozenDictionary<string, T> _exact = exact.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);
    private readonly FrozenDictionary<string, T> _wildcards = wildcardParents.ToFrozenDictionary(StringComparer.OrdinalIgnoreCase);

    public T Default { get; } = fallback;

    public T Select(string? serverName)
    {
        if (string.IsNullOrEmpty(serverName)) return Default;
        var name = serverName.AsSpan().TrimEnd('.');
        var exact = _exact.GetAlternateLookup<ReadOnlySpan<char>>();
        if (exact.TryGetValue(name, out var value)) return value;
        int dot = name.IndexOf('.');
        if (dot > 0 && _wildcards.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(name[(dot + 1)..], out value)) return value;
        return Default;
    }
}
