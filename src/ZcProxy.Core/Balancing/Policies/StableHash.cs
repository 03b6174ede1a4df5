using System.Runtime.InteropServices;

namespace ZcProxy.Core.Balancing.Policies;

/// <summary>
/// A 64-bit string hash that is the same in every process and release (string.GetHashCode is randomised per
/// process): FNV-1a over the UTF-16 code units, then the SplitMix64 finaliser to spread nearby keys over the ring.
/// </summary>
internal static class StableHash
{
    public static ulong Of(string text)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in MemoryMarshal.AsBytes(text.AsSpan()))
        {
            h ^= b;
            h *= 1099511628211UL;
        }
        return Mix(h);
    }

    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
