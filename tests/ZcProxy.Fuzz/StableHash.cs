namespace ZcProxy.Fuzz;

/// <summary>FNV-1a over the input: the same number in every process (string.GetHashCode and HashCode are randomised).</summary>
internal static class StableHash
{
    public static uint Of(ReadOnlySpan<byte> input)
    {
        uint hash = 2166136261;
        foreach (var b in input) hash = (hash ^ b) * 16777619;
        return hash;
    }
}
