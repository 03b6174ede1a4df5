namespace ZcProxy.Core.Balancing.Policies;

/// <summary>
/// A ketama-style consistent-hash ring: each destination owns points on a 64-bit circle in proportion to its
/// weight (160 points per destination on average, as ketama), and a key belongs to the first point at or after its
/// hash. Unavailable destinations are skipped by walking on, so losing one of N moves only its ~1/N of the keys,
/// and the others' keys stay where they were.
/// </summary>
internal sealed class HashRing
{
    public const int PointsPerDestination = 160;

    private readonly ulong[] _points;
    private readonly string[] _owners;

    private HashRing(ulong[] points, string[] owners)
    {
        _points = points;
        _owners = owners;
    }

    public int Count => _points.Length;

    public static HashRing Build(IReadOnlyCollection<(string Id, int Weight)> destinations)
    {
        var list = new List<(ulong Point, string Owner)>();
        double totalWeight = destinations.Sum(d => (double)Math.Max(1, d.Weight));
        foreach (var (id, weight) in destinations)
        {
            int points = Math.Max(1, (int)Math.Round(PointsPerDestination * destinations.Count * Math.Max(1, weight) / totalWeight));
            for (int i = 0; i < points; i++) list.Add((StableHash.Of($"{id}#{i}"), id));
        }
        // Ties between points are broken by owner so the ring does not depend on the order destinations are listed in.
        list.Sort((a, b) => a.Point != b.Point ? a.Point.CompareTo(b.Point) : string.CompareOrdinal(a.Owner, b.Owner));
        return new HashRing(list.Select(p => p.Point).ToArray(), list.Select(p => p.Owner).ToArray());
    }

    /// <summary>The owner of <paramref name="hash"/> among the destinations <paramref name="isAvailable"/> accepts, or null.</summary>
    public string? Lookup(ulong hash, Func<string, bool> isAvailable)
    {
        if (_points.Length == 0) return null;
        int start = Array.BinarySearch(_points, hash);
        if (start < 0) start = ~start;
        string? rejected = null;
        for (int n = 0; n < _points.Length; n++)
        {
            var owner = _owners[(start + n) % _points.Length];
            if (ReferenceEquals(owner, rejected)) continue; // cheap skip of runs of the same unavailable owner
            if (isAvailable(owner)) return owner;
            rejected = owner;
        }
        return null;
    }
}
