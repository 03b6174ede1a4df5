namespace ZcProxy.Core.Caching;

/// <summary>
/// What a cache entry holds besides its body: the key it answers, the request header values it was
/// selected by (Vary), the response head, and the times RFC 9111 §4.2.3 computes its age from.
/// </summary>
internal sealed record StoredResponse
{
    public required string Key { get; init; }
    /// <summary>Lower-cased field names from the response's Vary, with the request's values when it was stored.</summary>
    public required IReadOnlyList<(string Name, string Value)> Vary { get; init; }
    public required int Status { get; init; }
    public required DateTimeOffset RequestTime { get; init; }
    public required DateTimeOffset ResponseTime { get; init; }
    public required long BodyLength { get; init; }
    /// <summary>End-to-end header fields as stored (no hop-by-hop fields, no Content-Length; Set-Cookie only on routes that store it).</summary>
    public required IReadOnlyList<(string Name, string Value)> Headers { get; init; }

    public string? Header(string name)
    {
        string? found = null;
        for (int i = 0; i < Headers.Count; i++) // indexed: foreach over the interface would box an enumerator per call
        {
            var (n, v) = Headers[i];
            if (n.Equals(name, StringComparison.OrdinalIgnoreCase)) found = found is null ? v : found + ", " + v;
        }
        return found;
    }

    public IEnumerable<string> HeaderValues(string name)
    {
        foreach (var (n, v) in Headers)
            if (n.Equals(name, StringComparison.OrdinalIgnoreCase)) yield return v;
    }
}
