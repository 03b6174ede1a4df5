namespace ZcProxy.Core.Caching.Peers;

/// <summary>
/// Which node owns a cache key: rendezvous (highest random weight) hashing. Every node scores the key and the highest
/// score wins, so a node that leaves moves exactly its own keys (1/N) and a node that joins takes about 1/(N+1),
/// only from the others; no ring to rebuild, and every node computes the same owner from the same list. The hashes
/// are fixed functions (never string.GetHashCode, which differs per process).
/// </summary>
internal static class PeerRing
{
    /// <summary>The owner among the nodes <paramref name="usable"/> accepts; null when there is none.</summary>
    public static string? Owner(string key, IReadOnlyList<string> nodes, Func<string, bool> usable)
    {
        ulong keyHash = Fnv1a(key);
        string? best = null;
        ulong bestScore = 0;
        foreach (var node in nodes)
        {
            if (!usable(node)) continue;
            ulong score = Mix(keyHash ^ Fnv1a(node));
            // Ties (practically impossible) go to the ordinally smaller name, so every node agrees.
            if (best is null || score > bestScore || (score == bestScore && string.CompareOrdinal(node, best) < 0))
            {
                best = node;
                bestScore = score;
            }
        }
        return best;
    }

    private static ulong Fnv1a(string text)
    {
        ulong hash = 14695981039346656037UL;
        foreach (char c in text)
        {
            hash = (hash ^ (byte)c) * 1099511628211UL;
            hash = (hash ^ (byte)(c >> 8)) * 1099511628211UL;
        }
        return hash;
    }

    /// <summary>MurmurHash3's 64-bit finalizer: spreads the xor of two hashes over all bits.</summary>
    private static ulong Mix(ulong h)
    {
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdUL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53UL;
        h ^= h >> 33;
        return h;
    }
}
